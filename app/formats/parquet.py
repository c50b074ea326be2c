"""Parquet: rows and schema come from the footer metadata; no row group is read."""

from __future__ import annotations

from app.domain.problems import Problem, Severity
from app.formats.arrow_types import ArrowFormatError, Field
from app.formats.base import FormatReport
from app.formats.files import (
    FileEntry,
    empty_file_problem,
    open_binary,
    problem_for_os_error,
)
from app.formats.parquet_footer import read_footer
from app.formats.schema import arrow_schema


def read_parquet_meta(entry: FileEntry, problems: list[Problem]) -> tuple[int, list[Field]] | None:
    """(rows, arrow schema fields) from the footer, or None with a problem for a bad file."""
    if entry.size == 0:
        problems.append(empty_file_problem(entry.rel))
        return None
    try:
        with open_binary(entry.path) as fh:
            meta = read_footer(fh, entry.size)
            return meta.num_rows, meta.fields
    except OSError as exc:
        if isinstance(exc, PermissionError | FileNotFoundError):
            problems.append(problem_for_os_error(exc, entry.rel))
            return None
        reason = str(exc)
    except ArrowFormatError as exc:
        reason = str(exc)
    problems.append(
        Problem(
            Severity.ERROR,
            f"'{entry.rel}' is not a readable Parquet file (truncated or corrupt): {reason}",
            entry.rel,
        )
    )
    return None


def detect_parquet(entry: FileEntry) -> FormatReport:
    report = FormatReport(format="parquet", path=entry.rel)
    meta = read_parquet_meta(entry, report.problems)
    if meta is not None:
        report.record_count, schema = meta
        report.schema, report.details["arrowSchema"] = arrow_schema(schema)
    return report
