"""JSON, JSON Lines and Label Studio exports, including corrupt and truncated input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.domain.problems import Severity
from app.formats import detect, jsondata

from .helpers import by_format, messages

LS = "label_studio/project-1-at-2026-11-20-10-20-export.json"


def _records(n: int) -> list[dict[str, object]]:
    return [{"id": i, "text": f"r{i}", "score": i / 2, "ok": i % 2 == 0} for i in range(n)]


def test_json_array_of_records(tmp_path: Path) -> None:
    f = tmp_path / "records.json"
    f.write_text(json.dumps(_records(25), indent=2))
    part = by_format(detect(f), "json")
    assert part.record_count == 25
    assert part.schema == {"id": "int", "text": "string", "score": "float", "ok": "bool"}
    assert part.problems == []


def test_json_array_streams_across_tiny_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsondata, "CHUNK_CHARS", 7)
    f = tmp_path / "records.json"
    f.write_text(json.dumps(_records(300) + [123456789, 1.5e-9, True, None, "s"]))
    part = by_format(detect(f), "json")
    assert part.record_count == 305
    assert part.problems == []


def test_json_object_is_described(tmp_path: Path) -> None:
    f = tmp_path / "config.json"
    f.write_text('{"name": "x", "rows": [1, 2], "meta": {"a": 1}}')
    part = by_format(detect(f), "json")
    assert part.record_count is None
    assert part.details["keys"] == ["name", "rows", "meta"]
    assert part.schema == {"name": "string", "rows": "array", "meta": "object"}


def test_truncated_json_array(tmp_path: Path) -> None:
    f = tmp_path / "cut.json"
    raw = json.dumps(_records(10), indent=1)
    f.write_text(raw[: len(raw) - 30])
    part = by_format(detect(f), "json")
    assert part.record_count == 9
    assert [p.severity for p in part.problems] == [Severity.ERROR]
    assert "truncated" in part.problems[0].message
    assert "9 records before" in part.problems[0].message


def test_truncated_json_object(tmp_path: Path) -> None:
    f = tmp_path / "cut.json"
    f.write_text('{"a": 1, "b": [1, 2')
    part = by_format(detect(f), "json")
    assert "is truncated" in messages(part.problems)


def test_corrupt_json_names_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('{\n  "a": 1,\n  "b": oops\n}\n')
    part = by_format(detect(f), "json")
    assert "line 3, column 8" in messages(part.problems)


def test_corrupt_element_inside_array(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('[{"a": 1},\n {"a": 2},\n {"a": nope},\n {"a": 4}]')
    part = by_format(detect(f), "json")
    assert part.record_count == 2
    assert "not valid JSON" in messages(part.problems) and "line 3" in messages(part.problems)


def test_non_utf8_json(tmp_path: Path) -> None:
    f = tmp_path / "latin.json"
    f.write_bytes('{"name": "café"}'.encode("latin-1"))
    part = by_format(detect(f), "json")
    assert "not UTF-8" in messages(part.problems)


def test_object_over_parse_limit_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsondata, "FULL_PARSE_LIMIT", 100)
    f = tmp_path / "big.json"
    f.write_text(json.dumps({"rows": _records(20)}))
    part = by_format(detect(f), "json")
    assert part.record_count is None
    assert [p.severity for p in part.problems] == [Severity.WARNING]
    assert "not counted" in part.problems[0].message


def test_jsonl_good_and_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "data.jsonl"
    lines = [json.dumps(r) for r in _records(6)]
    lines.insert(2, "{not json")
    lines.insert(5, "")
    body = "\n".join(lines) + '\n{"id": 99, "te'
    f.write_text(body)
    part = by_format(detect(f), "jsonl")
    assert part.record_count == 6
    assert part.details["badLines"] == 2
    msg = messages(part.problems)
    assert "2 lines" in msg and "lines 3, 9" in msg and "truncated" in msg
    assert part.schema["id"] == "int"


@pytest.mark.parametrize("name", ["empty.json", "empty.jsonl"])
def test_zero_byte_json(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    f.write_bytes(b"")
    (part,) = detect(f).parts
    assert "empty (0 bytes)" in messages(part.problems)


def test_unreadable_json(tmp_path: Path, deny_read: Callable[[Path], None]) -> None:
    f = tmp_path / "x.json"
    f.write_text("[1, 2]")
    deny_read(f)
    part = by_format(detect(tmp_path), "json")
    assert "permission denied" in messages(part.problems)


def test_label_studio_export(samples: Path) -> None:
    report = detect(samples / "label_studio")
    part = by_format(report, "label-studio")
    assert part.path == LS.split("/")[1]
    assert part.record_count == 5
    assert part.classes == ["cat", "dog", "indoor", "outdoor"]
    assert part.details["tasks"] == 4
    assert part.details["annotations"] == 3
    assert part.details["cancelledAnnotations"] == 1
    assert part.details["resultTypes"] == {"choices": 2, "rectanglelabels": 3}
    assert part.details["labelCounts"] == {"cat": 1, "dog": 2, "indoor": 1, "outdoor": 1}
    assert [p.severity for p in part.problems] == [Severity.INFO]  # one task not annotated


def test_truncated_label_studio_export(samples: Path, tmp_path: Path) -> None:
    raw = (samples / LS).read_bytes()
    f = tmp_path / "export.json"
    f.write_bytes(raw[: int(len(raw) * 0.6)])
    part = by_format(detect(f), "label-studio")
    assert part.details["tasks"] >= 1
    assert "truncated" in messages(part.problems)
