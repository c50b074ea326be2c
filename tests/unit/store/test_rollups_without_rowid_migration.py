"""Migration 0013: the usage days and the rollups are rebuilt WITHOUT ROWID with every row as
it was; a downgrade rebuilds them with rowids, rows again unchanged."""

from __future__ import annotations

from pathlib import Path

from tests.support.catalogue_db import at_revision, rows, upgraded, write

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
    found = {t: rows(path, f"SELECT * FROM {t}") for t in TABLES}
    sql = rows(
        path,
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN "
        f"({', '.join('?' * len(TABLES))})",
        TABLES,
    )
    return found, {str(name): str(text) for name, text in sql}


def test_0013_rebuilds_without_rowid_and_keeps_every_row(tmp_path: Path) -> None:
    path = at_revision(tmp_path, "0012")
    for table, values in ROWS.items():
        write(path, f"INSERT INTO {table} VALUES {values}")
    before, sql = _read(path)
    assert not any("WITHOUT ROWID" in s for s in sql.values())

    upgraded(tmp_path, "0013")
    after, sql = _read(path)
    assert after == before and all(len(found) == 1 for found in after.values())
    assert all(s.rstrip().endswith("WITHOUT ROWID") for s in sql.values()), sql

    at_revision(tmp_path, "0012")
    down, sql = _read(path)
    assert down == before
    assert not any("WITHOUT ROWID" in s for s in sql.values())
