"""WAL checkpoints of the registry's SQLite database on a thread of their own.

SQLite normally checkpoints from inside the COMMIT that pushes the WAL past
`wal_autocheckpoint` pages: that writer copies every page back into the database file and
fsyncs it before its request can answer. A usage batch dirties thousands of bucket and ledger
pages, so on a busy registry nearly every few commits paid for a checkpoint, single-threaded,
while the next batch waited for the write lock.

Here a daemon thread checkpoints instead (PASSIVE: it never blocks readers or writers, and a
writer may commit while it copies), started by the engine's own commits and at most every
`interval` seconds; the writers' automatic checkpoint stays as a backstop at a much larger
WAL, so a stalled thread can only make the WAL bigger, never lose anything. Durability is
unchanged: a commit is in the WAL (synchronous=NORMAL) before it returns, whoever copies it
into the database file later.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

# WAL pages (4 KiB) after which a writer checkpoints by itself: only if this thread fell
# behind, e.g. starved of CPU (256 MiB).
BACKSTOP_PAGES = 65_536


class WalCheckpointer:
    """Checkpoints the WAL of one SQLite database file after commits, on its own thread."""

    def __init__(self, path: str, *, interval: float = 0.05) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0  # how many ran (tests, diagnostics)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="sqlite-wal-checkpointer", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """Something was committed: checkpoint soon."""
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=15, isolation_level=None)
            while not self._stop.is_set():
                self._wake.wait()
                if self._stop.is_set():
                    break
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # e.g. the file was removed: writers still work
                    log.warning("background WAL checkpoint failed: %s", exc)
                # Batch the commits of the next `interval` into one checkpoint.
                self._stop.wait(self.interval)
        except sqlite3.Error as exc:
            log.warning("background WAL checkpointer stopped: %s", exc)
        finally:
            if conn is not None:
                conn.close()


def attach_checkpointer(engine: Engine, path: str) -> WalCheckpointer:
    """Checkpoint `engine`'s SQLite file in the background; writers keep a backstop.

    The thread stops when the engine is garbage collected or `close()` is called.
    """
    ckpt = WalCheckpointer(path)

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        cur.close()

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "commit", lambda _conn: ckpt.notify())
    event.listen(engine, "engine_disposed", lambda _engine: ckpt.close())
    weakref.finalize(engine, ckpt.close, 0.0)
    CHECKPOINTERS[engine] = ckpt
    return ckpt


# The checkpointer of each engine that has one (diagnostics and tests).
CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, WalCheckpointer] = weakref.WeakKeyDictionary()
