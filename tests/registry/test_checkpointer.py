"""The background WAL checkpointer of SQLite registries (registry/db/checkpointer.py)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from registry.db.checkpointer import BACKSTOP_PAGES, CHECKPOINTERS
from registry.db.session import make_engine


def _wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_commits_are_checkpointed_in_the_background_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    ckpt = CHECKPOINTERS[engine]
    with engine.connect() as c:
        # Writers only checkpoint themselves as a backstop, far above SQLite's 1,000 pages.
        assert c.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == BACKSTOP_PAGES
        c.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        c.commit()
        for _ in range(20):
            c.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 500}] * 100)
            c.commit()
    assert _wait_for(lambda: ckpt.checkpoints > 0)

    def all_copied() -> bool:
        with sqlite3.connect(path) as probe:
            busy, frames, copied = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return bool(busy == 0 and frames == copied)

    assert _wait_for(all_copied)
    engine.dispose()  # stops the thread
    assert _wait_for(lambda: not ckpt._thread.is_alive())
    with sqlite3.connect(path) as again:
        assert again.execute("SELECT count(*) FROM t").fetchone() == (2000,)


def test_writers_still_commit_when_the_thread_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    ckpt = CHECKPOINTERS[engine]
    ckpt.close()  # as if the thread had died: writers still commit (their backstop remains)
    with engine.connect() as c:
        c.execute(text("CREATE TABLE t (v TEXT)"))
        c.execute(text("INSERT INTO t VALUES ('kept')"))
        c.commit()
        assert c.execute(text("SELECT v FROM t")).scalar_one() == "kept"
    engine.dispose()


def test_in_memory_databases_get_no_thread() -> None:
    engine = make_engine("sqlite:///:memory:")
    assert engine not in CHECKPOINTERS
    engine.dispose()
