"""Migration 0012: a recorded failure can be acknowledged (`acknowledged_at`); failures
recorded before stay unacknowledged; downgrade drops the column and keeps the failures."""

from __future__ import annotations

from pathlib import Path

from app.store.db import Database
from tests.support.catalogue_db import at_revision, rows, write


def test_0012_adds_the_acknowledgement_and_keeps_the_failures(tmp_path: Path) -> None:
    path = at_revision(tmp_path, "0011")
    write(
        path,
        "INSERT INTO log_failures (registry_key, at, what, message, evidence) "
        "VALUES ('k', '2026-12-01 09:00:00.000000', 'entry', 'wrong amount', '{}')",
    )

    Database(tmp_path).dispose()  # upgrades to head
    assert rows(path, "SELECT what, message, acknowledged_at FROM log_failures") == [
        ("entry", "wrong amount", None)
    ]
    at_revision(tmp_path, "0011")
    assert rows(path, "SELECT * FROM log_failures") == [
        (1, "k", "2026-12-01 09:00:00.000000", "entry", "wrong amount", "{}")
    ]
