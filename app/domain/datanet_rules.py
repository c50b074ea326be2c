"""Datanet rules and their evaluation, written once for the registry (at create and finalize)
and the app (before signing, so a contributor learns what would be rejected before uploading).

Rules arrive as the registry's JSON (`GET /v1/datanets/{id}`, `rules`); empty lists mean
"anything". Evaluation returns every broken rule, not only the first, each with its rule code
and the offending file when one file is to blame.

Content rules read facts about the contribution's parts (format, columns, record count) that
the app's format detection reports; `parts_from_report` turns the catalogue's stored report
into those facts, and the registry evaluates the same facts as the contributor declared them.
"No exact duplicates" compares the files' sha256 digests with the digests the datanet's
accepted contributions already hold (`held`), and with each other.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_KINDS = ("dataset", "annotation")
# Formats whose parts have named columns (CSV/TSV headers, Parquet schema, JSON Lines keys).
TABULAR_FORMATS = frozenset({"csv", "tsv", "parquet", "jsonl"})
MAX_COLUMN_NAME = 200
MAX_REQUIRED_COLUMNS = 100


@dataclass(frozen=True)
class RuleProblem:
    code: str
    message: str
    path: str | None = None


@dataclass(frozen=True)
class DatanetRules:
    kinds: tuple[str, ...] = DEFAULT_KINDS
    formats: tuple[str, ...] = ()  # lowercase extensions without the dot; () = any
    licenses: tuple[str, ...] = ()  # SPDX ids; () = any
    max_total_size: int | None = None  # bytes
    max_files: int | None = None
    review: bool = False
    required_columns: tuple[str, ...] = ()  # every tabular part has these; () = no rule
    min_records: int | None = None  # records over all parts, as the format report counts them
    no_duplicates: bool = False  # no file the datanet already holds, no file twice

    def to_json(self) -> dict[str, Any]:
        """The registry's JSON form (the inverse of from_json)."""
        return {
            "kinds": list(self.kinds),
            "formats": list(self.formats),
            "licenses": list(self.licenses),
            "maxTotalSize": self.max_total_size,
            "maxFiles": self.max_files,
            "review": self.review,
            "requiredColumns": list(self.required_columns),
            "minRecords": self.min_records,
            "noDuplicates": self.no_duplicates,
        }

    def summary(self) -> list[str]:
        """The rules in words, one line each (what a contributor reads before choosing)."""
        lines = []
        if self.kinds:
            lines.append("Kinds: " + ", ".join(self.kinds))
        lines.append("Formats: " + (", ".join(self.formats) if self.formats else "any"))
        lines.append("Licenses: " + (", ".join(self.licenses) if self.licenses else "any"))
        if self.max_total_size is not None:
            lines.append(f"At most {self.max_total_size:,} bytes in total")
        if self.max_files is not None:
            lines.append(f"At most {self.max_files:,} files")
        if self.required_columns:
            lines.append("Required columns: " + ", ".join(self.required_columns))
        if self.min_records is not None:
            lines.append(f"At least {self.min_records:,} records")
        if self.no_duplicates:
            lines.append("No exact duplicates of files the datanet already holds")
        if self.review:
            lines.append("The owner reviews every contribution")
        return lines

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatanetRules:
        """The registry's JSON form; ValueError when a field has the wrong type."""

        def texts(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = data.get(key, list(default))
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"datanet rule {key!r} is not a list of text")
            return tuple(value)

        def limit(key: str) -> int | None:
            value = data.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"datanet rule {key!r} is not a non-negative integer")
            return value

        def flag(key: str) -> bool:
            value = data.get(key, False)
            if not isinstance(value, bool):
                raise ValueError(f"datanet rule {key!r} is not true or false")
            return value

        columns = texts("requiredColumns", ())
        if len(columns) > MAX_REQUIRED_COLUMNS or any(
            not c.strip() or len(c) > MAX_COLUMN_NAME for c in columns
        ):
            raise ValueError(
                f"datanet rule 'requiredColumns' holds at most {MAX_REQUIRED_COLUMNS} "
                f"non-empty names of at most {MAX_COLUMN_NAME} characters"
            )
        return cls(
            kinds=texts("kinds", DEFAULT_KINDS),
            formats=texts("formats", ()),
            licenses=texts("licenses", ()),
            max_total_size=limit("maxTotalSize"),
            max_files=limit("maxFiles"),
            review=flag("review"),
            required_columns=columns,
            min_records=limit("minRecords"),
            no_duplicates=flag("noDuplicates"),
        )


@dataclass(frozen=True)
class Part:
    """One recognised part of a contribution: a file (CSV, Parquet…) or a folder (images)."""

    path: str
    format: str
    columns: tuple[str, ...] = ()
    records: int | None = None

    @property
    def tabular(self) -> bool:
        return self.format in TABULAR_FORMATS

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "columns": list(self.columns),
            "records": self.records,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Part:
        """A declared part (the registry's metadata form); ValueError on a wrong type."""
        path, fmt = data.get("path"), data.get("format")
        columns, records = data.get("columns", []), data.get("records")
        if not isinstance(path, str) or not isinstance(fmt, str):
            raise ValueError("a part needs a text 'path' and 'format'")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ValueError("a part's 'columns' is a list of text")
        if records is not None and (
            isinstance(records, bool) or not isinstance(records, int) or records < 0
        ):
            raise ValueError("a part's 'records' is a non-negative integer or null")
        return cls(path, fmt, tuple(columns), records)


def parts_from_report(report: Mapping[str, Any]) -> list[Part]:
    """The parts of a stored format detection report (DetectionReport.to_dict())."""
    parts = []
    for raw in report.get("parts", []) or []:
        if not isinstance(raw, Mapping):
            continue
        schema = raw.get("schema") or {}
        records = raw.get("recordCount")
        parts.append(
            Part(
                path=str(raw.get("path", "")),
                format=str(raw.get("format", "")),
                columns=tuple(str(c) for c in schema) if isinstance(schema, Mapping) else (),
                records=records if isinstance(records, int) and records >= 0 else None,
            )
        )
    return parts


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def evaluate(
    rules: DatanetRules,
    *,
    kind: str,
    license: str | None,
    files: Sequence[tuple[str, int]],
    parts: Sequence[Part] = (),
    digests: Mapping[str, str] | None = None,
    held: Collection[str] = (),
) -> list[RuleProblem]:
    """Every rule the contribution breaks (empty list = acceptable).

    `parts`: the format report's parts (content rules); `digests`: path -> sha256 of the files;
    `held`: the digests the datanet's accepted contributions already hold."""
    problems: list[RuleProblem] = []
    if rules.kinds and kind not in rules.kinds:
        problems.append(RuleProblem("kind_not_accepted", f"This datanet does not accept {kind!r}."))
    if rules.licenses and (license or "") not in rules.licenses:
        problems.append(
            RuleProblem(
                "license_not_accepted",
                f"License {license!r} is not one of {', '.join(rules.licenses)}.",
            )
        )
    if rules.max_files is not None and len(files) > rules.max_files:
        problems.append(RuleProblem("too_many_files", f"More than {rules.max_files} files."))
    total = sum(size for _, size in files)
    if rules.max_total_size is not None and total > rules.max_total_size:
        problems.append(
            RuleProblem(
                "too_large", f"Total size {total} bytes exceeds {rules.max_total_size} bytes."
            )
        )
    if rules.formats:
        allowed = {f.lower().lstrip(".") for f in rules.formats}
        for path, _ in files:
            if extension(path) not in allowed:
                problems.append(
                    RuleProblem(
                        "format_not_accepted",
                        "This file type is not accepted by the datanet.",
                        path,
                    )
                )
    problems.extend(_content_problems(rules, parts))
    if rules.no_duplicates and digests is not None:
        problems.extend(_duplicate_problems(files, digests, held))
    return problems


def _content_problems(rules: DatanetRules, parts: Sequence[Part]) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    if rules.required_columns:
        tables = [p for p in parts if p.tabular]
        need = ", ".join(rules.required_columns)
        if not tables:
            problems.append(
                RuleProblem(
                    "missing_columns",
                    f"This datanet needs tables (CSV, TSV, Parquet or JSON Lines) with the "
                    f"columns {need}; none was found.",
                )
            )
        for table in tables:
            have = set(table.columns)
            missing = [c for c in rules.required_columns if c not in have]
            if missing:
                problems.append(
                    RuleProblem(
                        "missing_columns",
                        f"Missing required column(s) {', '.join(missing)} (needs {need}).",
                        table.path,
                    )
                )
    if rules.min_records is not None:
        total = sum(p.records or 0 for p in parts)
        if total < rules.min_records:
            problems.append(
                RuleProblem(
                    "too_few_records",
                    f"{total:,} record(s); this datanet needs at least {rules.min_records:,}.",
                )
            )
    return problems


def _duplicate_problems(
    files: Sequence[tuple[str, int]], digests: Mapping[str, str], held: Collection[str]
) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    held_set = set(held)
    first: dict[str, str] = {}
    for path, _ in files:
        sha = digests.get(path)
        if sha is None:
            continue
        if sha in held_set:
            problems.append(
                RuleProblem(
                    "duplicate_file",
                    "The datanet already holds an exact copy of this file.",
                    path,
                )
            )
        elif sha in first:
            problems.append(
                RuleProblem(
                    "duplicate_file",
                    f"An exact copy of {first[sha]} in this contribution.",
                    path,
                )
            )
        else:
            first[sha] = path
    return problems
