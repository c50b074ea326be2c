"""Migration 0010: the verified hash tiles table; inclusion proofs stored before it keep their
audit path (and `audit` still verifies entries by it), and downgrade drops only the tiles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

from app.store.db import DB_FILE_NAME, Database, _alembic_config


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_0010_adds_the_tiles_and_keeps_stored_proofs(tmp_path: Path) -> None:
    db = Database(tmp_path)
    command.downgrade(_alembic_config(db.engine), "0009")
    db.dispose()
    path = tmp_path / DB_FILE_NAME
    assert _rows(path, "SELECT name FROM sqlite_master WHERE name = 'log_tiles'") == []
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO log_proofs VALUES ('k', 'o', '17', 3, 9, ?, ?)",
            (b'{"id":17}', bytes(range(64))),
        )
    conn.close()

    Database(tmp_path).dispose()  # upgrades to head
    assert _rows(path, "SELECT cursor, leaf_index, tree_size, proof FROM log_proofs") == [
        ("17", 3, 9, bytes(range(64)))
    ]
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO log_tiles VALUES ('k', 0, 0, 9, 9, ?)", (bytes(9 * 32),))
    conn.close()
    assert _rows(path, "SELECT level, idx, width, tree_size FROM log_tiles") == [(0, 0, 9, 9)]

    db = Database(tmp_path)
    command.downgrade(_alembic_config(db.engine), "0009")
    db.dispose()
    assert _rows(path, "SELECT name FROM sqlite_master WHERE name = 'log_tiles'") == []
    assert len(_rows(path, "SELECT * FROM log_proofs")) == 1
