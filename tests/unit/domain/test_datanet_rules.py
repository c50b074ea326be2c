"""Datanet rule evaluation, shared by the registry and the app (app.domain.datanet_rules)."""

from __future__ import annotations

import pytest

from app.domain.datanet_rules import DatanetRules, evaluate

STRICT = {
    "kinds": ["dataset"],
    "formats": ["csv", ".PARQUET"],
    "licenses": ["CC0-1.0"],
    "maxTotalSize": 10,
    "maxFiles": 2,
    "review": False,
}


def test_every_broken_rule_is_reported() -> None:
    problems = evaluate(
        DatanetRules.from_json(STRICT),
        kind="annotation",
        license="CC-BY-4.0",
        files=[("a.csv", 5), ("b/readme.txt", 5), ("c.parquet", 1)],
    )
    assert [p.code for p in problems] == [
        "kind_not_accepted",
        "license_not_accepted",
        "too_many_files",
        "too_large",
        "format_not_accepted",
    ]
    assert [p.path for p in problems if p.code == "format_not_accepted"] == ["b/readme.txt"]


def test_empty_rules_accept_anything_and_defaults_apply() -> None:
    rules = DatanetRules.from_json({})
    assert rules.kinds == ("dataset", "annotation") and rules.max_files is None
    assert evaluate(rules, kind="dataset", license=None, files=[("x", 10**12)]) == []
    assert evaluate(rules, kind="model", license=None, files=[])[0].code == "kind_not_accepted"


@pytest.mark.parametrize(
    "bad",
    [{"kinds": "dataset"}, {"formats": [1]}, {"maxFiles": -1}, {"maxTotalSize": True}],
)
def test_rules_of_the_wrong_shape_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DatanetRules.from_json(bad)
