"""The in-process SQLite writer gate of bulk ingestion (registry/db/writegate.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from registry.db import writegate
from registry.db.session import make_engine, make_sessionmaker


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (v TEXT)"))
    yield make_sessionmaker(engine)
    engine.dispose()


def _gate_of(session: Session) -> threading.Lock:
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    return writegate._gate(bind)


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_gate_is_held_until_the_transaction_ends(sessions: sessionmaker[Session], end: str) -> None:
    s = sessions()
    s.execute(text("INSERT INTO t VALUES ('a')"))
    writegate.hold_write_gate(s)
    writegate.hold_write_gate(s)  # held already: no second acquire (would deadlock)
    gate = _gate_of(s)
    assert gate.locked()
    s.flush()
    assert gate.locked()  # a flush does not end the transaction
    getattr(s, end)()
    assert not gate.locked()
    s.close()
    with sessions() as again:
        rows = again.execute(text("SELECT count(*) FROM t")).scalar_one()
    assert rows == (1 if end == "commit" else 0)


def test_a_second_writer_waits_for_the_first_and_then_writes(
    sessions: sessionmaker[Session],
) -> None:
    first = sessions()
    first.execute(text("INSERT INTO t VALUES ('first')"))
    writegate.hold_write_gate(first)
    order: list[str] = []

    def second() -> None:
        with sessions() as s:
            writegate.hold_write_gate(s)  # blocks until `first` commits
            order.append("second has the gate")
            s.execute(text("INSERT INTO t VALUES ('second')"))
            s.commit()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.2)
    assert order == []  # still waiting: no SQLITE_BUSY polling, no error
    order.append("first commits")
    first.commit()
    first.close()
    t.join(10)
    assert order == ["first commits", "second has the gate"]
    with sessions() as s:
        assert s.execute(text("SELECT v FROM t ORDER BY rowid")).scalars().all() == [
            "first",
            "second",
        ]


def test_a_stuck_gate_times_out_into_sqlites_own_locking(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writegate, "WAIT_SECONDS", 0.1)
    with sessions() as s:
        gate = _gate_of(s)
        gate.acquire()  # held by someone that never lets go
        try:
            writegate.hold_write_gate(s)  # gives up waiting, writes without the gate
            s.execute(text("INSERT INTO t VALUES ('x')"))
            s.commit()
            assert gate.locked()  # not released by a session that never held it
        finally:
            gate.release()


def test_other_databases_have_no_gate() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with Session(engine) as s:
        writegate.hold_write_gate(s)  # returns without connecting
        assert writegate._HELD not in s.info
    engine.dispose()
