"""JSON and JSON Lines.

A top-level JSON array is streamed element by element (the C decoder parses each element
from a bounded buffer), so record counts work for files of any size. A top-level object
must be parsed whole; that only happens below FULL_PARSE_LIMIT bytes.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from app.domain.boundedjson import too_deep
from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport
from app.formats.files import (
    FileEntry,
    ScanContext,
    empty_file_problem,
    open_binary,
    problem_for_os_error,
)
from app.formats.schema import RecordSchema, json_value_type

FULL_PARSE_LIMIT = 256 * 1024 * 1024
# Data nests a few levels; deeper is refused as a problem of the file (the json module
# recurses once per level, and 100,000 levels would end in RecursionError).
MAX_DATA_DEPTH = 200
ELEMENT_LIMIT = 64 * 1024 * 1024
CHUNK_CHARS = 1 << 20
SCHEMA_RECORDS = 1000
MAX_LISTED_LINES = 10
_WS = " \t\r\n"
_LOOKAHEAD = 64  # chars near a buffer end that may belong to a value cut by the chunking


class JsonStreamError(Exception):
    """Malformed or truncated JSON found while streaming; message is user-facing."""


@dataclass(slots=True)
class JsonSniff:
    """What the first bytes of a .json file say: its top-level kind, parsed if small."""

    kind: str  # "array" | "object" | "scalar" | "error"
    document: Any = None
    first_element: Any = None
    problem: Problem | None = None


def sniff_json(entry: FileEntry) -> JsonSniff:
    """Classify a .json file cheaply: peek an array's first element, parse a small object."""
    if entry.size == 0:
        return JsonSniff("error", problem=empty_file_problem(entry.rel))
    try:
        with open_binary(entry.path) as fh:
            first = _first_char(fh)
            if first == "[":
                fh.seek(0)
                try:
                    element = next(iter_array(fh), None)
                except JsonStreamError:
                    element = None  # the full pass reports it with context
                return JsonSniff("array", first_element=element)
            if first == "{" and entry.size > FULL_PARSE_LIMIT:
                return JsonSniff("object")
            fh.seek(0)
            raw = fh.read()
    except OSError as exc:
        return JsonSniff("error", problem=problem_for_os_error(exc, entry.rel))
    except UnicodeDecodeError:
        return JsonSniff("error", problem=_not_utf8(entry.rel))
    try:
        doc = load_data_json(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return JsonSniff("error", problem=_not_utf8(entry.rel))
    except json.JSONDecodeError as exc:
        return JsonSniff("error", problem=_decode_problem(entry, exc))
    except JsonTooDeep as exc:
        problem = Problem(Severity.ERROR, f"'{entry.rel}' {exc}.", entry.rel)
        return JsonSniff("error", problem=problem)
    return JsonSniff("object" if isinstance(doc, dict) else "scalar", document=doc)


class JsonTooDeep(ValueError):
    """The document nests deeper than MAX_DATA_DEPTH; the message is user-facing."""

    def __init__(self) -> None:
        super().__init__(f"nests deeper than {MAX_DATA_DEPTH} levels, so it was not read")


def load_data_json(text: str | bytes) -> Any:
    """json.loads of a data file or one of its elements, with the nesting bounded
    (JsonTooDeep); json.JSONDecodeError as usual for what is not JSON."""
    try:
        doc = json.loads(text)
    except RecursionError:  # the C decoder stops cleanly at the interpreter's limit
        raise JsonTooDeep() from None
    if too_deep(text, MAX_DATA_DEPTH):  # valid, but deeper than the code after us expects
        raise JsonTooDeep()
    return doc


def _not_utf8(rel: str) -> Problem:
    return Problem(Severity.ERROR, f"'{rel}' is not UTF-8 text, so it is not valid JSON.", rel)


def _decode_problem(entry: FileEntry, exc: json.JSONDecodeError) -> Problem:
    if exc.pos >= len(exc.doc.rstrip()):
        what = "is truncated: it ends in the middle of a value"
    else:
        what = f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    return Problem(Severity.ERROR, f"'{entry.rel}' {what}.", entry.rel)


def _first_char(fh: BinaryIO) -> str:
    head = fh.read(4096).decode("utf-8-sig", errors="replace").lstrip(_WS)
    return head[:1]


def iter_array(fh: BinaryIO) -> Iterator[Any]:
    """Yield the elements of a top-level JSON array with bounded memory.

    Raises JsonStreamError (user-facing message) on malformed or truncated input.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    json_decoder = json.JSONDecoder()
    buf = ""
    pos = 0
    eof = False
    line = 1  # line of buf[0], for messages

    def fill(need_more: bool) -> bool:
        nonlocal buf, pos, eof, line
        if eof:
            return False
        line += buf.count("\n", 0, pos)
        buf = buf[pos:]
        pos = 0
        size = max(CHUNK_CHARS, len(buf)) if need_more else CHUNK_CHARS
        raw = fh.read(size)
        try:
            buf += decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise JsonStreamError(f"is not UTF-8 text near line {line}") from exc
        eof = not raw
        return True

    def skip_ws() -> bool:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf):
                return True
            if not fill(False):
                return False

    def where() -> int:
        return line + buf.count("\n", 0, pos)

    if not skip_ws() or buf[pos] != "[":
        raise JsonStreamError("does not start with '['")
    pos += 1
    if not skip_ws():
        raise JsonStreamError("is truncated: the array is never closed")
    if buf[pos] == "]":
        pos += 1
        _expect_end(skip_ws, where)
        return
    while True:
        while True:
            try:
                value, end = json_decoder.raw_decode(buf, pos)
            except RecursionError:
                raise JsonStreamError(
                    f"has an element at line {where()} that {JsonTooDeep()}"
                ) from None
            except json.JSONDecodeError as exc:
                unterminated = exc.msg.startswith("Unterminated")
                if eof and (unterminated or _cut_at(buf, exc.pos)):
                    raise JsonStreamError(
                        f"is truncated: it ends inside an element that starts at line {where()}"
                    ) from exc
                if eof or not (unterminated or exc.pos >= len(buf) - _LOOKAHEAD):
                    raise JsonStreamError(
                        f"is not valid JSON: {exc.msg} at line {line + exc.lineno - 1}"
                    ) from exc
                if len(buf) - pos > ELEMENT_LIMIT:
                    raise JsonStreamError(
                        f"has an element over {ELEMENT_LIMIT // (1024 * 1024)} MB at line "
                        f"{where()}; it was not inspected"
                    ) from exc
                fill(True)
                continue
            break
        # A value ending right at the buffer's end may continue (a number, a split literal).
        if not eof and len(buf) - end < _LOOKAHEAD:
            fill(True)
            continue
        if buf.count("[", pos, end) + buf.count("{", pos, end) >= MAX_DATA_DEPTH and too_deep(
            buf[pos:end], MAX_DATA_DEPTH - 1
        ):
            raise JsonStreamError(f"has an element at line {where()} that {JsonTooDeep()}")
        pos = end
        yield value
        if not skip_ws():
            raise JsonStreamError("is truncated: the array is never closed")
        if buf[pos] == "]":
            pos += 1
            _expect_end(skip_ws, where)
            return
        if buf[pos] != ",":
            raise JsonStreamError(f"is not valid JSON: expected ',' or ']' at line {where()}")
        pos += 1
        if not skip_ws():
            raise JsonStreamError("is truncated: it ends after a ','")


def _cut_at(buf: str, pos: int) -> bool:
    """Whether a decode error at pos is just the end of input (possibly mid-literal)."""
    tail = buf[pos:].strip(_WS)
    return not tail or any(word.startswith(tail) for word in ("true", "false", "null"))


def _expect_end(skip_ws: Any, where: Any) -> None:
    if skip_ws():
        raise JsonStreamError(f"has extra data after the array at line {where()}")


def detect_json(entry: FileEntry, sniff: JsonSniff, ctx: ScanContext) -> FormatReport:
    """A plain JSON file: records of an array are counted, an object is described."""
    report = FormatReport(format="json", path=entry.rel)
    if sniff.problem is not None:
        report.problems.append(sniff.problem)
        return report
    if sniff.kind == "array":
        _detect_array(entry, ctx, report)
    elif sniff.kind == "object" and sniff.document is None:
        report.problems.append(
            Problem(
                Severity.WARNING,
                f"'{entry.rel}' holds one JSON object of {entry.size} bytes, over the "
                f"{FULL_PARSE_LIMIT // (1024 * 1024)} MB inspected; its records were not "
                "counted.",
                entry.rel,
            )
        )
    elif isinstance(sniff.document, dict):
        doc: dict[str, Any] = sniff.document
        report.details["topLevel"] = "object"
        report.details["keys"] = [str(k) for k in list(doc)[:50]]
        report.schema = {str(k): json_value_type(v) or "null" for k, v in doc.items()}
    else:
        report.details["topLevel"] = json_value_type(sniff.document) or "null"
        report.record_count = 1
    return report


def _detect_array(entry: FileEntry, ctx: ScanContext, report: FormatReport) -> None:
    report.details["topLevel"] = "array"
    schema = RecordSchema(SCHEMA_RECORDS)
    count = 0
    try:
        with open_binary(entry.path) as fh:
            for element in iter_array(fh):
                count += 1
                schema.add(element)
                if count % 65536 == 0:
                    ctx.check_cancel()
    except OSError as exc:
        report.problems.append(problem_for_os_error(exc, entry.rel))
    except JsonStreamError as exc:
        report.problems.append(
            Problem(
                Severity.ERROR,
                f"'{entry.rel}' {exc} ({count} records before that point).",
                entry.rel,
            )
        )
    report.record_count = count
    report.schema = schema.result()


def detect_jsonl(entry: FileEntry, ctx: ScanContext) -> FormatReport:
    """JSON Lines, streamed line by line; bad lines are counted and the first few listed."""
    report = FormatReport(format="jsonl", path=entry.rel)
    if entry.size == 0:
        report.problems.append(empty_file_problem(entry.rel))
        return report
    schema = RecordSchema(SCHEMA_RECORDS)
    count = bad = deep = 0
    bad_lines: list[int] = []
    truncated_last = False
    try:
        with open_binary(entry.path) as fh:
            for number, raw in enumerate(fh, start=1):
                if number % 65536 == 0:
                    ctx.check_cancel()
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[3:]
                if not raw.strip():
                    continue
                try:
                    record = load_data_json(raw)
                except (json.JSONDecodeError, UnicodeDecodeError, JsonTooDeep) as exc:
                    deep += isinstance(exc, JsonTooDeep)
                    bad += 1
                    if len(bad_lines) < MAX_LISTED_LINES:
                        bad_lines.append(number)
                    truncated_last = not raw.endswith(b"\n")
                    continue
                truncated_last = False
                count += 1
                schema.add(record)
    except OSError as exc:
        report.problems.append(problem_for_os_error(exc, entry.rel))
    report.record_count = count
    report.schema = schema.result()
    if bad:
        shown = ", ".join(str(n) for n in bad_lines)
        extra = " The last line looks truncated." if truncated_last else ""
        if deep:
            extra += f" {deep} of them nest deeper than {MAX_DATA_DEPTH} levels."
        report.details["badLines"] = bad
        report.problems.append(
            Problem(
                Severity.ERROR,
                f"{bad} lines of '{entry.rel}' are not valid JSON (first at lines {shown}).{extra}",
                entry.rel,
            )
        )
    return report
