"""Migration 0012: a recorded failure can be acknowledged (`acknowledged_at`); failures
recorded before stay unacknowledged; downgrade drops the column and keeps the failures."""

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


def test_0012_adds_the_acknowledgement_and_keeps_the_failures(tmp_path: Path) -> None:
    db = Database(tmp_path)
    command.downgrade(_alembic_config(db.engine), "0011")
    db.dispose()
    path = tmp_path / DB_FILE_NAME
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO log_failures (registry_key, at, what, message, evidence) "
            "VALUES ('k', '2026-12-01 09:00:00.000000', 'entry', 'wrong amount', '{}')"
        )
    conn.close()

    Database(tmp_path).dispose()  # upgrades to head
    assert _rows(path, "SELECT what, message, acknowledged_at FROM log_failures") == [
        ("entry", "wrong amount", None)
    ]
    db = Database(tmp_path)
    command.downgrade(_alembic_config(db.engine), "0011")
    db.dispose()
    assert _rows(path, "SELECT * FROM log_failures") == [
        (1, "k", "2026-12-01 09:00:00.000000", "entry", "wrong amount", "{}")
    ]
