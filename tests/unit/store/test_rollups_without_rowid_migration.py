"""Migration 0013: the usage days and the rollups are rebuilt WITHOUT ROWID with every row as
it was; a downgrade rebuilds them with rowids, rows again unchanged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

from app.store.db import DB_FILE_NAME, Database, _alembic_config

TABLES = (
    "usage_days",
    "ledger_rollup_days",
    "ledger_rollup_totals",
    "usage_rollup_days",
    "usage_rollup_contributions",
)
ROWS = {
    "usage_days": "('k', 'c1', '2026-12-01', 'm', 'influence', 3, 400000, 1200)",
    "ledger_rollup_days": "('k', 'o', 'c1', '2026-12-01', 'm', 'influence', 1200, 2)",
    "ledger_rollup_totals": "('k', 'o', 'c1', 'm', 'influence', 1200, 2)",
    "usage_rollup_days": "('k', 'o', '2026-12-01', 'm', 'influence', 1, 3, 400000, 1200)",
    "usage_rollup_contributions": "('k', 'o', 'c1', '2026-12-01', 1, 3, 400000, 1200)",
}


def _read(path: Path) -> tuple[dict[str, list[tuple[object, ...]]], dict[str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}
        sql = dict(
            conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN "
                f"({', '.join('?' * len(TABLES))})",
                TABLES,
            ).fetchall()
        )
        return rows, sql
    finally:
        conn.close()


def test_0013_rebuilds_without_rowid_and_keeps_every_row(tmp_path: Path) -> None:
    db = Database(tmp_path)
    command.downgrade(_alembic_config(db.engine), "0012")
    db.dispose()
    path = tmp_path / DB_FILE_NAME
    conn = sqlite3.connect(path)
    with conn:
        for table, values in ROWS.items():
            conn.execute(f"INSERT INTO {table} VALUES {values}")
    conn.close()
    before, sql = _read(path)
    assert not any("WITHOUT ROWID" in s for s in sql.values())

    Database(tmp_path).dispose()  # upgrades to head
    after, sql = _read(path)
    assert after == before and all(len(rows) == 1 for rows in after.values())
    assert all(s.rstrip().endswith("WITHOUT ROWID") for s in sql.values()), sql

    db = Database(tmp_path)
    command.downgrade(_alembic_config(db.engine), "0012")
    db.dispose()
    down, sql = _read(path)
    assert down == before
    assert not any("WITHOUT ROWID" in s for s in sql.values())
