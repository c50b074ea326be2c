"""Rows inserted as one JSON array (app.store.json_rows) read back exactly like the same rows
bound by executemany: every SQLite type, texts of any Unicode, bytes cast back, integers at
SQLite's bounds; the rows JSON cannot carry are named (they take executemany)."""

from __future__ import annotations

import sqlite3

import pytest

from app.store.json_rows import as_text, encode, insert_json, jsonable

COLUMNS = ("k", "n", "t", "b", "z", "flag")
ROWS = [
    (1, "plain", b'{"a":1}', None, True),
    (2**63 - 1, 'é😀\u2028"\\\x01\x7f', "é😀".encode(), 0, False),
    (-(2**63), "", b"", -1, None),
]


def _table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE t (k TEXT, n INTEGER, t TEXT, b BLOB, z INTEGER, flag BOOLEAN, "
        "PRIMARY KEY (k, n))"
    )


def _read(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    columns = ", ".join(f"typeof({c}), {c}" for c in COLUMNS)
    return db.execute(f"SELECT {columns} FROM t ORDER BY rowid").fetchall()


def test_json_rows_read_back_like_executemany() -> None:
    many, one = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for db in (many, one):
        _table(db)
    many.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", [("key", *r) for r in ROWS])
    sql = insert_json("t", COLUMNS, 1, blobs=("b",))
    assert sql.startswith("INSERT INTO t (k, n, t, b, z, flag) SELECT ?1, json_extract(")
    texts = [(n, t, as_text(b), z, flag) for n, t, b, z, flag in ROWS]
    one.execute(sql, ("key", encode(texts)))
    assert _read(one) == _read(many)


def test_a_conflict_clause_applies_to_every_row() -> None:
    db = sqlite3.connect(":memory:")
    _table(db)
    sql = insert_json("t", COLUMNS, 1, "ON CONFLICT DO NOTHING", blobs=("b",))
    rows = [(1, "first", "", 0, True), (1, "again", "", 0, True), (2, "second", "", 0, True)]
    db.execute(sql, ("key", encode(rows)))
    assert [r[0] for r in db.execute("SELECT t FROM t ORDER BY rowid")] == ["first", "second"]


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"leaf", "leaf"), ("é".encode(), "é"), (b"", ""), (b"a\x00b", None), (b"\xff\xfe", None)],
)
def test_bytes_go_as_text_only_when_they_come_back_the_same(data: bytes, text: str | None) -> None:
    assert as_text(data) == text


def test_texts_with_a_nul_are_not_jsonable() -> None:
    # SQLite's JSON functions end a text at a NUL: such rows take executemany
    db = sqlite3.connect(":memory:")
    assert db.execute("SELECT json_extract(?, '$[0]')", (encode(["a\x00b"]),)).fetchone() == ("a",)
    assert jsonable(["a", "é😀"]) and not jsonable(["a", "a\x00b"])
