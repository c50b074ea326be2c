"""CSV and TSV: streamed in bounded chunks so a multi-gigabyte table never sits in memory."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport
from app.formats.files import (
    FileEntry,
    ScanContext,
    empty_file_problem,
    open_binary,
    problem_for_os_error,
)
from app.formats.schema import text_cell_type, widen

CHUNK_BYTES = 1 << 20
SCHEMA_ROWS = 1000
MAX_LISTED_LINES = 10
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(slots=True)
class _Decoding:
    """Tracks which physical lines were not UTF-8 while lines stream past."""

    bad_lines: list[int] = field(default_factory=list)
    bad_count: int = 0
    utf8_non_ascii: bool = False
    lines_seen: int = 0


def _decoded_blocks(fh: BinaryIO, state: _Decoding) -> Iterator[Iterable[str]]:
    """Yield blocks of text lines; a chunk is decoded at once, per line only on failure.

    Chunks are cut after the last newline, which never occurs inside a UTF-8 sequence, so a
    character is never split between two chunks.
    """
    rest = b""
    while True:
        chunk = fh.read(CHUNK_BYTES)
        if not chunk:
            block, rest = rest, b""
        else:
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
        if not block:
            return
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            yield list(_decode_per_line(block, state))
        else:
            if not state.utf8_non_ascii and not text.isascii():
                state.utf8_non_ascii = True
            state.lines_seen += block.count(b"\n")
            yield io.StringIO(text, newline="\n")
        if not chunk:
            return


def _decode_per_line(block: bytes, state: _Decoding) -> Iterator[str]:
    for raw in io.BytesIO(block):
        state.lines_seen += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            state.bad_count += 1
            if len(state.bad_lines) < MAX_LISTED_LINES:
                state.bad_lines.append(state.lines_seen)
            line = raw.decode("utf-8", errors="replace")
        else:
            if not line.isascii():
                state.utf8_non_ascii = True
        yield line


def _pick_delimiter(first_line: str, default: str) -> str:
    """A .csv written with ';' (European spreadsheets) is common; detect it from the header."""
    if default == "," and first_line.count(",") == 0:
        for candidate in (";", "\t", "|"):
            if first_line.count(candidate) > 0:
                return candidate
    return default


def detect_delimited(entry: FileEntry, fmt: str, ctx: ScanContext) -> FormatReport:
    """Count rows, infer a simple schema from the first rows, report ragged/encoding issues."""
    report = FormatReport(format=fmt, path=entry.rel)
    if entry.size == 0:
        report.problems.append(empty_file_problem(entry.rel))
        return report
    try:
        with open_binary(entry.path) as fh:
            _scan(fh, entry, fmt, ctx, report)
    except OSError as exc:
        report.problems.append(problem_for_os_error(exc, entry.rel))
    return report


def _scan(fh: BinaryIO, entry: FileEntry, fmt: str, ctx: ScanContext, rep: FormatReport) -> None:
    head = fh.read(4)
    if head.startswith(_UTF16_BOMS):
        rep.details["bom"] = "utf-16"
        rep.problems.append(
            Problem(
                Severity.ERROR,
                f"'{entry.rel}' is UTF-16 encoded; save it as UTF-8 to contribute it.",
                entry.rel,
            )
        )
        return
    fh.seek(3 if head.startswith(_UTF8_BOM) else 0)
    if head.startswith(_UTF8_BOM):
        rep.details["bom"] = "utf-8"
    state = _Decoding()
    blocks = _decoded_blocks(fh, state)
    first_block = iter(next(blocks, []))
    first = next(first_block, "")
    delimiter = _pick_delimiter(first, "\t" if fmt == "tsv" else ",")
    rep.details["delimiter"] = delimiter
    lines = itertools.chain([first], first_block, itertools.chain.from_iterable(blocks))
    reader = csv.reader(lines, delimiter=delimiter)
    tally = _Tally()
    try:
        _read_rows(reader, tally, ctx)
    except csv.Error as exc:
        rep.problems.append(
            Problem(
                Severity.ERROR,
                f"'{entry.rel}' cannot be parsed at line {reader.line_num}: {exc}. "
                "Rows after that point were not counted.",
                entry.rel,
            )
        )
    header, types, rows, blank = tally.header, tally.types, tally.rows, tally.blank
    ragged, ragged_lines = tally.ragged, tally.ragged_lines
    rep.record_count = rows
    if header is not None:
        rep.schema = _schema(header, types)
        rep.details["columns"] = len(header)
    if blank:
        rep.details["blankLines"] = blank
    if ragged:
        rep.details["raggedRows"] = ragged
        shown = ", ".join(str(n) for n in ragged_lines)
        rep.problems.append(
            Problem(
                Severity.ERROR,
                f"{ragged} rows of '{entry.rel}' do not have {len(header or [])} columns like "
                f"the header (first at lines {shown}).",
                entry.rel,
            )
        )
    _encoding_problems(state, entry, rep)


@dataclass(slots=True)
class _Tally:
    header: list[str] | None = None
    types: list[str | None] = field(default_factory=list)
    rows: int = 0
    blank: int = 0
    ragged: int = 0
    ragged_lines: list[int] = field(default_factory=list)


def _read_rows(reader: Any, tally: _Tally, ctx: ScanContext) -> None:
    """First rows feed the schema; the rest go through a lean loop (this is the hot path)."""
    for row in reader:
        if row:
            tally.header = row
            tally.types = [None] * len(row)
            break
        tally.blank += 1
    if tally.header is None:
        return
    columns = len(tally.header)
    types = tally.types
    for row in itertools.islice(reader, SCHEMA_ROWS):
        if row:
            for i, cell in enumerate(row[:columns]):
                types[i] = widen(types[i], text_cell_type(cell))
        _count(tally, row, columns, reader.line_num)
    rows = blank = 0
    try:
        for row in reader:
            if len(row) != columns:
                if not row:
                    blank += 1
                    continue
                _count(tally, row, columns, reader.line_num)
                continue
            rows += 1
            if not rows & 0xFFFF:
                tally.rows += rows
                rows = 0
                ctx.check_cancel()
    finally:
        tally.rows += rows
        tally.blank += blank


def _count(tally: _Tally, row: list[str], columns: int, line: int) -> None:
    if not row:
        tally.blank += 1
        return
    tally.rows += 1
    if len(row) != columns:
        tally.ragged += 1
        if len(tally.ragged_lines) < MAX_LISTED_LINES:
            tally.ragged_lines.append(line)


def _schema(header: list[str], types: list[str | None]) -> dict[str, str]:
    schema: dict[str, str] = {}
    for i, name in enumerate(header):
        key = name if name not in schema else f"{name}.{i}"
        schema[key] = types[i] or "string"
    return schema


def _encoding_problems(state: _Decoding, entry: FileEntry, rep: FormatReport) -> None:
    if not state.bad_count:
        rep.details["encoding"] = "utf-8"
        return
    shown = ", ".join(str(n) for n in state.bad_lines)
    rep.details["nonUtf8Lines"] = state.bad_count
    if state.utf8_non_ascii:
        rep.details["encoding"] = "mixed"
        msg = (
            f"'{entry.rel}' mixes encodings: {state.bad_count} lines are not UTF-8 while "
            f"others are (first at lines {shown}). Re-save the file as UTF-8."
        )
        rep.problems.append(Problem(Severity.ERROR, msg, entry.rel))
    else:
        rep.details["encoding"] = "not-utf-8"
        msg = (
            f"'{entry.rel}' is not UTF-8: {state.bad_count} lines hold other bytes (first at "
            f"lines {shown}), probably Latin-1/Windows-1252. Re-save it as UTF-8."
        )
        rep.problems.append(Problem(Severity.WARNING, msg, entry.rel))
