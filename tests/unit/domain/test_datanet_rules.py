"""Datanet rule evaluation, shared by the registry and the app (app.domain.datanet_rules)."""

from __future__ import annotations

import pytest

from app.domain.datanet_rules import DatanetRules, Part, evaluate, parts_from_report
from tests.support.datanet_rule_cases import CASES, RuleCase, sha

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


# -- the shared case table (tests/registry/test_datanets.py runs the same cases) -------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule_case_in_the_app(case: RuleCase) -> None:
    problems = evaluate(
        DatanetRules.from_json(case.rules),
        kind=case.kind,
        license=case.license,
        files=[(p, len(b)) for p, b in case.files.items()],
        parts=[Part.from_json(p) for p in case.parts],
        digests={p: sha(b) for p, b in case.files.items()},
        held={sha(b) for b in case.held.values()},
    )
    assert {(p.code, p.path) for p in problems} == set(case.expected)
    assert len(problems) == len(case.expected)


def test_parts_from_a_stored_format_report() -> None:
    report = {
        "parts": [
            {"format": "csv", "path": "a.csv", "recordCount": 2, "schema": {"id": "int"}},
            {"format": "images", "path": "img", "recordCount": None, "schema": {}},
            "not a part",
        ]
    }
    assert parts_from_report(report) == [
        Part("a.csv", "csv", ("id",), 2),
        Part("img", "images", (), None),
    ]


@pytest.mark.parametrize(
    "rules",
    [
        {"requiredColumns": "id"},
        {"requiredColumns": [""]},
        {"requiredColumns": ["x" * 201]},
        {"minRecords": -1},
        {"minRecords": True},
        {"noDuplicates": "yes"},
        {"review": 1},
    ],
)
def test_unreadable_new_rules_are_refused(rules: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DatanetRules.from_json(rules)


def test_rules_round_trip_through_json() -> None:
    rules = DatanetRules.from_json(
        {"requiredColumns": ["id"], "minRecords": 3, "noDuplicates": True, "review": True}
    )
    assert DatanetRules.from_json(rules.to_json()) == rules
    assert "Required columns: id" in rules.summary()
