"""Datanet rules and their evaluation, written once for the registry (at create and finalize)
and the app (before signing, so a contributor learns what would be rejected before uploading).

Rules arrive as the registry's JSON (`GET /v1/datanets/{id}`, `rules`); empty lists mean
"anything". Evaluation returns every broken rule, not only the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_KINDS = ("dataset", "annotation")


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

        return cls(
            kinds=texts("kinds", DEFAULT_KINDS),
            formats=texts("formats", ()),
            licenses=texts("licenses", ()),
            max_total_size=limit("maxTotalSize"),
            max_files=limit("maxFiles"),
            review=bool(data.get("review", False)),
        )


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def evaluate(
    rules: DatanetRules,
    *,
    kind: str,
    license: str | None,
    files: Sequence[tuple[str, int]],
) -> list[RuleProblem]:
    """Every rule the contribution breaks (empty list = acceptable)."""
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
    return problems
