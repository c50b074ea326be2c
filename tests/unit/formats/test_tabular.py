"""CSV, TSV and Parquet detection: exact counts on real files, every kind of bad input."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.domain.problems import Severity
from app.formats import delimited, detect

from .helpers import by_format, messages


def test_diabetes_csv_rows_and_schema(samples: Path) -> None:
    report = detect(samples / "csv" / "diabetes.csv")
    part = by_format(report, "csv")
    assert part.path == "diabetes.csv"
    assert part.record_count == 442
    assert list(part.schema) == [
        "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target",
    ]  # fmt: skip
    assert set(part.schema.values()) == {"float"}
    assert part.details["encoding"] == "utf-8"
    assert part.problems == []


def test_linnerud_tsv(samples: Path) -> None:
    part = by_format(detect(samples / "tsv"), "tsv")
    assert part.path == "linnerud.tsv"
    assert part.record_count == 20
    assert part.schema == {"Chins": "float", "Situps": "float", "Jumps": "float"}
    assert part.details["delimiter"] == "\t"


def test_parquet_from_footer(samples: Path) -> None:
    part = by_format(detect(samples / "parquet" / "diabetes.parquet"), "parquet")
    assert part.record_count == 442
    assert part.schema["age"] == "float"
    assert part.details["arrowSchema"]["target"] == "double"
    assert part.problems == []


def test_schema_inference_with_missing_cells(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("id,score,ok,name,mix\n1,1.5,true,ann,1\n2,,false,bob,x\n,3,,,2.5\n")
    part = by_format(detect(f), "csv")
    assert part.record_count == 3
    assert part.schema == {
        "id": "int",
        "score": "float",
        "ok": "bool",
        "name": "string",
        "mix": "string",
    }


def test_ragged_rows_counted_with_line_numbers(tmp_path: Path) -> None:
    f = tmp_path / "ragged.csv"
    # line 4 holds a quoted newline, so the ragged row after it starts on line 6
    f.write_text('a,b,c\n1,2,3\n4,5\n"x\ny",7,8\n9,10,11,12\n13,14,15\n')
    part = by_format(detect(f), "csv")
    assert part.record_count == 5
    assert part.details["raggedRows"] == 2
    errors = [p for p in part.problems if p.severity is Severity.ERROR]
    assert len(errors) == 1
    assert "2 rows" in errors[0].message and "lines 3, 6" in errors[0].message
    assert errors[0].path == "ragged.csv"


def test_mixed_encodings_report_line_numbers(tmp_path: Path) -> None:
    f = tmp_path / "mixed.csv"
    f.write_bytes(
        "name,city\nZoë,Zürich\n".encode()
        + "René,Genève\n".encode("cp1252")
        + b"plain,ascii\n"
        + "Ana,Málaga\n".encode("cp1252")
    )
    part = by_format(detect(f), "csv")
    assert part.record_count == 4
    assert part.details["encoding"] == "mixed"
    assert part.details["nonUtf8Lines"] == 2
    err = [p for p in part.problems if p.severity is Severity.ERROR]
    assert len(err) == 1 and "lines 3, 5" in err[0].message


def test_non_utf8_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delimited, "CHUNK_BYTES", 64)
    f = tmp_path / "latin.csv"
    lines = [b"k,v\n"] + [b"row%d,value\n" % i for i in range(40)]
    lines[30] = "row29,caf\u00e9\n".encode("latin-1")
    f.write_bytes(b"".join(lines))
    part = by_format(detect(f), "csv")
    assert part.record_count == 40
    assert part.details["encoding"] == "not-utf-8"
    warning = [p for p in part.problems if p.severity is Severity.WARNING]
    assert len(warning) == 1 and "lines 31)" in warning[0].message


def test_utf8_bom_is_detected_and_stripped(tmp_path: Path) -> None:
    f = tmp_path / "bom.csv"
    f.write_bytes(b"\xef\xbb\xbfid,v\n1,2\n")
    part = by_format(detect(f), "csv")
    assert part.details["bom"] == "utf-8"
    assert list(part.schema) == ["id", "v"]
    assert part.record_count == 1


def test_utf16_is_an_error_not_garbage(tmp_path: Path) -> None:
    f = tmp_path / "wide.csv"
    f.write_bytes("a,b\n1,2\n".encode("utf-16"))
    part = by_format(detect(f), "csv")
    assert part.record_count is None
    assert "UTF-16" in messages(part.problems)


def test_semicolon_csv(tmp_path: Path) -> None:
    f = tmp_path / "eu.csv"
    f.write_text("a;b;c\n1,5;2;3\n")
    part = by_format(detect(f), "csv")
    assert part.details["delimiter"] == ";"
    assert list(part.schema) == ["a", "b", "c"]
    assert part.problems == []


def test_huge_field_is_reported_not_raised(tmp_path: Path) -> None:
    f = tmp_path / "big.csv"
    f.write_text('a,b\n1,2\n3,"' + "x" * 200_000 + '"\n5,6\n')
    part = by_format(detect(f), "csv")
    assert part.record_count == 1
    assert "cannot be parsed at line 3" in messages(part.problems)


@pytest.mark.parametrize("name", ["empty.csv", "empty.tsv", "empty.parquet"])
def test_zero_byte_tables(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    f.write_bytes(b"")
    report = detect(f)
    (part,) = report.parts
    assert part.record_count is None
    assert [p.severity for p in part.problems] == [Severity.ERROR]
    assert "empty (0 bytes)" in part.problems[0].message


def test_truncated_parquet(samples: Path, tmp_path: Path) -> None:
    raw = (samples / "parquet" / "diabetes.parquet").read_bytes()
    f = tmp_path / "cut.parquet"
    f.write_bytes(raw[: len(raw) // 2])
    part = by_format(detect(f), "parquet")
    assert part.record_count is None
    assert "truncated or corrupt" in messages(part.problems)


def test_unreadable_csv(tmp_path: Path, deny_read: Callable[[Path], None]) -> None:
    f = tmp_path / "secret.csv"
    f.write_text("a\n1\n")
    deny_read(f)
    part = by_format(detect(tmp_path), "csv")
    assert part.record_count is None
    assert [p.severity for p in part.problems] == [Severity.ERROR]
    assert "permission denied" in part.problems[0].message


def test_unreadable_parquet(tmp_path: Path, deny_read: Callable[[Path], None]) -> None:
    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), f)
    deny_read(f)
    part = by_format(detect(tmp_path), "parquet")
    assert "permission denied" in messages(part.problems)


def _write_big_csv(path: Path, target_bytes: int) -> int:
    """Wide rows: 50 MB of text in few rows keeps tracemalloc's per-allocation cost low."""
    row = b"123456,3.14159,%s,true,%s\n" % (b"t" * 500, b"n" * 500)
    block = row * 1000
    rows = 0
    with path.open("wb") as fh:
        fh.write(b"id,x,label,flag,note\n")
        while rows * len(row) < target_bytes:
            fh.write(block)
            rows += 1000
    return rows


def test_detection_streams_a_large_csv(tmp_path: Path) -> None:
    """A ~50 MB CSV is counted with a small, bounded peak of Python allocations."""
    f = tmp_path / "big.csv"
    rows = _write_big_csv(f, 50 * 1024 * 1024)
    assert f.stat().st_size > 50 * 1024 * 1024
    gc.collect()
    tracemalloc.start()
    try:
        report = detect(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    part = by_format(report, "csv")
    assert part.record_count == rows
    assert part.schema == {
        "id": "int",
        "x": "float",
        "label": "string",
        "flag": "bool",
        "note": "string",
    }
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
