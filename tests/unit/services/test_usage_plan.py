"""Which usage windows a sync reads again (app.services.usage_plan), on a real SQLite copy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services.context import ServiceContext
from app.services.usage_plan import (
    EARLIEST_NEW_SQL,
    LAST_ENTRY_SQL,
    UsageMark,
    last_entry,
    parse_mark,
    plan_usage,
)
from app.store.rewards_models import RewardRecord, ensure_scope

KEY, OWNER = "reg", "f" * 64
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    ctx = ServiceContext(tmp_path / "desk", "http://127.0.0.1:1")
    try:
        with ctx.db.session() as s:
            yield s
    finally:
        ctx.close()


def _entry(s: Session, n: int, cid: str, day: date) -> int:
    row = RewardRecord(
        scope=ensure_scope(s, KEY, OWNER), cursor=str(n), event_id=f"s{n}", contribution_id=cid,
        model_id="m", method="influence", amount_micro=5,
        at=datetime.combine(day, datetime.min.time(), UTC), demo=False,
    )  # fmt: skip
    s.add(row)
    s.flush()
    return row.id


def _plan(s: Session, mark: UsageMark | None, seq: int | None) -> object:
    """`a` and `b` read an hour ago, `c` two days ago, `d` never."""
    fresh = NOW - timedelta(hours=1)
    streams = {"a": fresh, "b": fresh, "c": NOW - timedelta(days=2)}
    plan = plan_usage(
        s, KEY, OWNER, ["a", "b", "c", "d"],
        mark=mark, settled_seq=seq, streams=streams, adopted=False, now=NOW,
    )  # fmt: skip
    return plan.full, plan.since


def test_nothing_moved_reads_only_the_never_read_and_the_day_old(session: Session) -> None:
    last = _entry(session, 1, "a", date(2026, 12, 1))
    assert _plan(session, UsageMark(10, last), 10) == ({"c", "d"}, {})


def test_new_entries_name_the_contributions_and_their_earliest_day(session: Session) -> None:
    last = _entry(session, 1, "a", date(2026, 12, 1))
    _entry(session, 2, "b", date(2026, 12, 4))
    _entry(session, 3, "b", date(2026, 12, 2))
    _entry(session, 4, "zz", date(2026, 12, 2))  # not one of the accepted contributions
    assert _plan(session, UsageMark(10, last), 12) == ({"c", "d"}, {"b": date(2026, 12, 2)})


@pytest.mark.parametrize("mark,seq", [(None, 10), (UsageMark(10, 0), None), (UsageMark(10, 0), 9)])
def test_without_a_usable_mark_every_window_is_read(
    session: Session, mark: UsageMark | None, seq: int | None
) -> None:
    assert _plan(session, mark, seq) == ({"a", "b", "c", "d"}, {})


@pytest.mark.parametrize("text", [None, "", "12", "12:", ":3", "x:1", "1:-2", "١:2"])
def test_a_mark_that_is_not_two_numbers_is_no_mark(text: str | None) -> None:
    assert parse_mark(text) is None
    assert parse_mark("12:3") == UsageMark(12, 3)


def test_the_plan_reads_the_entries_after_the_mark_by_their_ids(session: Session) -> None:
    """The last entry and the entries after the mark are a range of ids read from the end,
    never a walk over every entry of the registry in an index (a no-op sync stays fast)."""
    for sql in (LAST_ENTRY_SQL, EARLIEST_NEW_SQL):
        steps = [
            str(row[-1])
            for row in session.execute(
                text("EXPLAIN QUERY PLAN " + sql), {"key": KEY, "owner": OWNER, "after": 0}
            )
        ]
        # the entries' own step (the scope's id is one lookup in ledger_scopes' key)
        plan = " ".join(step for step in steps if "reward_entries" in step)
        assert plan and "INDEX" not in plan.replace("INTEGER PRIMARY KEY", ""), steps
    other = _entry(session, 1, "c1", date(2026, 12, 1))
    session.execute(  # another identity's entry after it: the backwards read passes it by
        text(
            "INSERT INTO reward_entries (scope, cursor, event_id, "
            "contribution_id, model_id, method, amount_micro, at, demo) VALUES "
            "(:scope, '9', 's9', 'c9', 'm', 'influence', 1, '2026-12-02 00:00:00', 0)"
        ),
        {"scope": ensure_scope(session, KEY, "someone")},
    )
    assert last_entry(session, KEY, OWNER) == other
    assert last_entry(session, KEY, "nobody") == 0
