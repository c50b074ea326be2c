"""One table of datanet rule cases, fed to both the app's check (app.domain.datanet_rules, as
the review sheet and `submit` run it) and the registry (a contribution posted to a datanet with
these rules). Each case names the violations expected: rule code and offending path.

`held` files are first contributed and accepted in the same datanet (registry) or passed as the
digests the registry answered (app), so "no exact duplicates" is tested the same way on both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RuleCase:
    name: str
    rules: dict[str, Any]
    files: dict[str, bytes]
    parts: list[dict[str, Any]] = field(default_factory=list)
    held: dict[str, bytes] = field(default_factory=dict)
    kind: str = "dataset"
    license: str = "CC-BY-4.0"
    # (code, path or None) for each violation, in any order
    expected: frozenset[tuple[str, str | None]] = frozenset()


CSV = b"id,text,label\n1,a,x\n2,b,y\n"
CSV2 = b"id,text\n3,c\n"


def _table(path: str, columns: list[str], records: int | None, fmt: str = "csv") -> dict[str, Any]:
    return {"path": path, "format": fmt, "columns": columns, "records": records}


CASES: list[RuleCase] = [
    RuleCase("no rules", {}, {"a.csv": CSV}),
    RuleCase(
        "kind not accepted",
        {"kinds": ["annotation"]},
        {"a.csv": CSV},
        expected=frozenset({("kind_not_accepted", None)}),
    ),
    RuleCase(
        "license not accepted",
        {"licenses": ["CC0-1.0"]},
        {"a.csv": CSV},
        expected=frozenset({("license_not_accepted", None)}),
    ),
    RuleCase("license accepted", {"licenses": ["CC-BY-4.0"]}, {"a.csv": CSV}),
    RuleCase(
        "format not accepted names the file",
        {"formats": ["csv"]},
        {"a.csv": CSV, "notes.txt": b"n"},
        expected=frozenset({("format_not_accepted", "notes.txt")}),
    ),
    RuleCase("max files: exactly at the limit", {"maxFiles": 2}, {"a.csv": CSV, "b.csv": CSV2}),
    RuleCase(
        "max files: one over",
        {"maxFiles": 1},
        {"a.csv": CSV, "b.csv": CSV2},
        expected=frozenset({("too_many_files", None)}),
    ),
    RuleCase("max size: exactly at the limit", {"maxTotalSize": len(CSV)}, {"a.csv": CSV}),
    RuleCase(
        "max size: one byte over",
        {"maxTotalSize": len(CSV) - 1},
        {"a.csv": CSV},
        expected=frozenset({("too_large", None)}),
    ),
    RuleCase(
        "required columns present",
        {"requiredColumns": ["id", "text"]},
        {"a.csv": CSV},
        parts=[_table("a.csv", ["id", "text", "label"], 2)],
    ),
    RuleCase(
        "required column missing in one table names that table",
        {"requiredColumns": ["id", "label"]},
        {"a.csv": CSV, "b.csv": CSV2},
        parts=[_table("a.csv", ["id", "text", "label"], 2), _table("b.csv", ["id", "text"], 1)],
        expected=frozenset({("missing_columns", "b.csv")}),
    ),
    RuleCase(
        "required columns: JSON Lines keys and Parquet columns count",
        {"requiredColumns": ["text"]},
        {"a.jsonl": b'{"text":"a"}\n', "b.parquet": b"PAR1"},
        parts=[
            _table("a.jsonl", ["text"], 1, "jsonl"),
            _table("b.parquet", ["id"], 3, "parquet"),
        ],
        expected=frozenset({("missing_columns", "b.parquet")}),
    ),
    RuleCase(
        "required columns but no table at all",
        {"requiredColumns": ["id"]},
        {"img.png": b"\x89PNG"},
        parts=[{"path": ".", "format": "images", "columns": [], "records": 1}],
        expected=frozenset({("missing_columns", None)}),
    ),
    RuleCase(
        "column names are case-sensitive",
        {"requiredColumns": ["ID"]},
        {"a.csv": CSV},
        parts=[_table("a.csv", ["id", "text", "label"], 2)],
        expected=frozenset({("missing_columns", "a.csv")}),
    ),
    RuleCase(
        "min records: exactly at the minimum (summed over parts)",
        {"minRecords": 3},
        {"a.csv": CSV, "b.csv": CSV2},
        parts=[_table("a.csv", ["id"], 2), _table("b.csv", ["id"], 1)],
    ),
    RuleCase(
        "min records: one short",
        {"minRecords": 4},
        {"a.csv": CSV, "b.csv": CSV2},
        parts=[_table("a.csv", ["id"], 2), _table("b.csv", ["id"], 1)],
        expected=frozenset({("too_few_records", None)}),
    ),
    RuleCase(
        "min records: unknown counts count as none",
        {"minRecords": 1},
        {"a.csv": CSV},
        parts=[_table("a.csv", ["id"], None)],
        expected=frozenset({("too_few_records", None)}),
    ),
    RuleCase(
        "no duplicates: a file the datanet holds",
        {"noDuplicates": True},
        {"a.csv": CSV, "new.csv": CSV2},
        held={"old/a.csv": CSV},
        expected=frozenset({("duplicate_file", "a.csv")}),
    ),
    RuleCase(
        "no duplicates: the same file twice in one contribution",
        {"noDuplicates": True},
        {"a.csv": CSV, "copy/a.csv": CSV},
        expected=frozenset({("duplicate_file", "copy/a.csv")}),
    ),
    RuleCase(
        "duplicates allowed without the rule",
        {},
        {"a.csv": CSV, "copy/a.csv": CSV},
        held={"old/a.csv": CSV},
    ),
    RuleCase(
        "every violation at once",
        {
            "kinds": ["dataset"],
            "formats": ["csv"],
            "licenses": ["CC0-1.0"],
            "maxFiles": 1,
            "maxTotalSize": 10,
            "requiredColumns": ["label"],
            "minRecords": 100,
            "noDuplicates": True,
        },
        {"a.csv": CSV, "b.csv": CSV2, "x.txt": b"x"},
        parts=[_table("a.csv", ["id", "text", "label"], 2), _table("b.csv", ["id", "text"], 1)],
        held={"h.csv": CSV},
        expected=frozenset(
            {
                ("license_not_accepted", None),
                ("too_many_files", None),
                ("too_large", None),
                ("format_not_accepted", "x.txt"),
                ("missing_columns", "b.csv"),
                ("too_few_records", None),
                ("duplicate_file", "a.csv"),
            }
        ),
    ),
]
