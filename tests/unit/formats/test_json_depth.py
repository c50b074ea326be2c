"""Deeply nested JSON in a user's data is a problem of that file, never a crash: every JSON
reader of app.formats (plain JSON, JSON Lines, Label Studio, COCO, Hugging Face metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.domain.problems import Severity
from app.formats import detect, jsondata

from .helpers import messages

DEEP = 100_000


def _nested_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("array.json", _nested_array(DEEP)),
        ("object.json", _nested_object(DEEP)),
        ("records.json", "[" + json.dumps({"ok": 1}) + "," + _nested_array(DEEP) + "]"),
        ("lines.jsonl", '{"ok": 1}\n' + _nested_array(DEEP) + "\n"),
        ("just_over.json", "[" + _nested_array(jsondata.MAX_DATA_DEPTH) + "]"),
    ],
)
def test_deep_json_is_an_error_of_that_file(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    (tmp_path / "fine.json").write_text('[{"a": [[[1]]]}]')
    report = detect(tmp_path)
    problems = report.all_problems()
    assert any(p.severity is Severity.ERROR and p.path == name for p in problems), messages(
        problems
    )
    assert "deeper than 200 levels" in messages(problems)
    assert not any(p.path == "fine.json" for p in problems)


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    depth = jsondata.MAX_DATA_DEPTH
    (tmp_path / "deep_but_fine.json").write_text(_nested_object(depth))
    assert messages(detect(tmp_path).all_problems()) == ""


def test_a_truncated_deep_file_is_still_called_truncated(tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_text('{"a": ' + "[" * 300 + "1, 2")
    text = messages(detect(tmp_path).all_problems())
    assert "truncated" in text or "not valid JSON" in text
    assert "deeper" not in text


def test_deep_label_studio_and_coco_are_problems(tmp_path: Path) -> None:
    task = {"id": 1, "data": {"image": "a.jpg"}, "annotations": [{"result": []}]}
    deep_task = '{"id": 2, "data": ' + _nested_array(DEEP) + ', "annotations": []}'
    (tmp_path / "ls.json").write_text("[" + json.dumps(task) + "," + deep_task + "]")
    coco = '{"images": [], "annotations": [], "categories": ' + _nested_array(DEEP) + "}"
    (tmp_path / "instances.json").write_text(coco)
    problems = detect(tmp_path).all_problems()
    assert {p.path for p in problems if p.severity is Severity.ERROR} >= {
        "ls.json",
        "instances.json",
    }, messages(problems)


def test_deep_yaml_configs_are_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: " + "[" * 50_000 + "]" * 50_000 + "\n")
    (tmp_path / "README.md").write_text("---\nlicense: " + "[" * 50_000 + "\n---\n# card\n")
    detect(tmp_path)  # finishes: the configs are simply not recognised
