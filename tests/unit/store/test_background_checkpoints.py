"""While a sync runs, the WAL is copied into the catalogue by a thread of its own: what a
large transaction wrote reaches the database file without any commit checkpointing it."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from app.store.db import Database


def _write_a_few_mb(db: Database) -> None:
    with db.session() as s:
        s.execute(text("CREATE TABLE IF NOT EXISTS filler (b BLOB)"))
        s.execute(
            text("INSERT INTO filler (b) VALUES (:b)"), [{"b": bytes(4000)} for _ in range(1000)]
        )


def _grew(path: Path, size: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.stat().st_size > size + 2_000_000:
            return True
        time.sleep(0.05)
    return False


def test_the_wal_is_checkpointed_in_the_background_while_the_block_runs(tmp_path: Path) -> None:
    db = Database(tmp_path)
    try:
        with db.session() as s:  # the WAL exists: later commits append to it
            s.execute(text("SELECT 1"))
        size = db.path.stat().st_size
        _write_a_few_mb(db)  # 4 MB: far below the auto-checkpoint, stays in the WAL
        assert not _grew(db.path, size, 0.6)
        with db.checkpoints_in_background(every=0.05):
            assert _grew(db.path, size, 10.0)
            _write_a_few_mb(db)
            assert _grew(db.path, size + 4_000_000, 10.0)
    finally:
        db.dispose()
