"""One in-process writer at a time per SQLite database, queued on a lock instead of polling.

SQLite lets one connection write at a time; a second writer gets SQLITE_BUSY and its busy
handler sleeps and retries on a fixed schedule (1, 2, 5, 10, ... 100 ms). Two usage batches
ingested at once (concurrent POST /v1/usage requests) therefore mostly slept: the second one
woke up tens of milliseconds after the first had committed, and two writers were slower than
one.

Bulk writers take this gate just before their first write instead. Everything before it
(reading which events exist, validating, splitting, aggregating: Python work) runs while the
other batch writes and commits (sqlite3 releases the GIL while SQLite works), and the waiting
writer starts the moment the lock is free. The gate is released when the session's transaction
ends (commit, rollback or close). It only orders writers of this process that use it; other
writers and other processes still meet SQLite's own locking, exactly as before.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

# As long as the engine's busy timeout: past it, SQLite's own locking decides.
WAIT_SECONDS = 15.0
_HELD = "registry.sqlite_write_gate"
_gates: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def _gate(engine: Engine) -> threading.Lock:
    with _gates_lock:
        gate = _gates.get(engine)
        if gate is None:
            gate = _gates[engine] = threading.Lock()
        return gate


def hold_write_gate(session: Session) -> None:
    """On SQLite, wait for the engine's writer gate and hold it until the session's
    transaction ends; a no-op on other databases and when this transaction holds it already."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.dialect.name != "sqlite" or _HELD in session.info:
        return
    gate = _gate(engine)
    if not gate.acquire(timeout=WAIT_SECONDS):
        log.warning("SQLite write gate busy for %.0f s; writing without it", WAIT_SECONDS)
        return
    session.info[_HELD] = gate


@event.listens_for(Session, "after_transaction_end")
def _release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:  # a savepoint or a subtransaction
        return
    gate: Any = session.info.pop(_HELD, None)
    if gate is not None:
        gate.release()
