"""GET /v1/me/rewards/{entryId}/events: one indexed range read per page, pages that join up to
the whole list, whatever events of the chunk name the contribution without counting; the same
list for an entry settled before paid_attributions existed (read from the usage log alone)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from registry.db.usage_models import LedgerEntry, PaidAttribution
from registry.settlement import entry_events, unpack_positions
from tests.support.usage_data import UsageWorld, event, usage_world

DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(db_url, tmp_path) as w:
        w.client.post(
            "/v1/models", json={"id": "other-model", "name": "Other"}, headers=w.operator.headers
        )
        yield w


def _pages(world: UsageWorld, cursor: str, headers: dict[str, str], limit: int) -> list[Any]:
    items: list[Any] = []
    after: str | None = None
    while True:
        params = {"limit": limit} | ({"after": after} if after else {})
        r = world.client.get(f"/v1/me/rewards/{cursor}/events", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["hasMore"] == (page["nextCursor"] is not None)
        items.extend(page["items"])
        if not page["hasMore"]:
            return items
        after = page["nextCursor"]


def _settled_before_paid_attributions(world: UsageWorld) -> None:
    """As if every entry had been settled before migration 0015: no paid attributions."""
    with world.sessions() as s:
        s.query(PaidAttribution).delete()
        s.commit()


@pytest.mark.parametrize("before_0015", [False, True], ids=["paid-rows", "usage-log-only"])
def test_entry_events_pages_join_up_past_events_that_do_not_count(
    world: UsageWorld, before_0015: bool
) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a)[0], world.ids_of(b)[0]
    events = []
    for i in range(90):
        attrs: list[tuple[str, float, str]]
        if i % 9 == 0:  # counts for ca's exact-match entry of DAY
            attrs = [(ca, 1 + i % 4, "exact-match"), (cb, 2, "retrieval")]
        elif i % 9 == 1:  # ca's exact-match, the day before: another entry
            attrs = [(ca, 1, "exact-match")]
        elif i % 9 == 2:  # ca's exact-match on another model: another entry
            attrs = [(cb, 1, "influence"), (ca, 1, "exact-match")]
        else:  # names ca and "exact-match", but ca's attribution is influence
            attrs = [(ca, 1, "influence"), (cb, 1, "exact-match")]
        model = "other-model" if i % 9 == 2 else "test-model"
        at = DAY - timedelta(days=1) if i % 9 == 1 else DAY + timedelta(seconds=i)
        events.append(event(f"e{i}", model, attrs, fee_micro=1000 + i, at=at))
    assert len(world.post_usage(events).json()["accepted"]) == 90
    with world.sessions() as s:
        entry = s.scalars(
            select(LedgerEntry).where(
                LedgerEntry.contribution_id == ca,
                LedgerEntry.method == "exact-match",
                LedgerEntry.model_id == "test-model",
                LedgerEntry.at >= DAY - timedelta(hours=12),
            )
        ).one()
        assert entry.events == 10
        paid = s.scalars(
            select(PaidAttribution.positions).where(
                PaidAttribution.contribution_id == ca, PaidAttribution.method == "exact-match"
            )
        ).all()
        # this entry's 10 events, the day before's and the other model's, in one chunk
        assert [len(unpack_positions(p)) for p in paid] == [30]
    if before_0015:
        _settled_before_paid_attributions(world)
    cursor = str(entry.id)
    whole = _pages(world, cursor, a.headers, 500)
    assert [x["eventId"] for x in whole] == [f"e{i}" for i in range(0, 90, 9)]
    assert sum(x["amountMicro"] for x in whole) == entry.amount_micro
    for limit in (1, 3, 10):  # a page of 1 reads past 8 rows that do not count between events
        assert _pages(world, cursor, a.headers, limit) == whole
    r = world.client.get(f"/v1/me/rewards/{cursor}/events", headers=b.headers)
    assert r.status_code == 404


def _plan_of_one_page(world: UsageWorld) -> str:
    """The query plan of the one read `entry_events` makes for a page of an entry's events."""
    ca = world.ids_of(world.contributors[0])[0]
    with world.sessions() as s:
        entry = s.scalars(select(LedgerEntry).where(LedgerEntry.contribution_id == ca)).one()
        conn = s.connection()
        seen: list[tuple[str, Any]] = []

        def grab(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            if "usage_events" in statement:
                seen.append((statement, params))

        sa_event.listen(conn, "before_cursor_execute", grab)
        try:
            assert len(entry_events(s, entry, after=None, limit=2)) == 2
        finally:
            sa_event.remove(conn, "before_cursor_execute", grab)
        assert len(seen) == 1  # one read for the page
        statement, params = seen[0]
        if conn.dialect.name == "sqlite":
            return " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, params))  # fmt: skip
        # the planner's statistics of the events read, and an index preferred to a scan
        conn.execute(text("ANALYZE usage_events"))
        conn.execute(text("ANALYZE paid_attributions"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return " ".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, params))


def _five_events(world: UsageWorld) -> None:
    """Five events of one entry of `ca`, among 500 of the same model and day that name only
    other contributions (what a day of a popular model looks like to one contributor)."""
    a, b = world.contributors
    ca, cb = world.ids_of(a)[0], world.ids_of(b)[0]
    evs = [event(f"e{i}", "test-model", [(ca, 1, "influence"), (cb, 1, "retrieval")], at=DAY)
           for i in range(5)]  # fmt: skip
    evs += [event(f"o{i}", "test-model", [(cb, 1, "influence")], at=DAY) for i in range(500)]
    world.post_usage(evs)


def test_entry_events_read_the_events_at_the_paid_positions(world: UsageWorld) -> None:
    """An entry's page: its events found by their usage-log positions (the chunk's paid
    positions of its contribution and method), not a range of the chunk's model and day."""
    _five_events(world)
    plan = _plan_of_one_page(world)
    # points of an index that starts with, or holds, the position (per position read)
    if "SEARCH" in plan:  # SQLite
        assert "SEARCH usage_events USING INDEX" in plan and "seq=?" in plan, plan
        assert "seq>?" not in plan, plan
    else:  # PostgreSQL
        assert "seq = ANY" in plan, plan
        assert "Index Cond" in plan.split("seq = ANY")[0], plan
    assert "LIKE" not in plan.upper(), plan


def test_entry_events_of_an_entry_settled_before_0015_read_the_model_seq_index(
    world: UsageWorld,
) -> None:
    _five_events(world)
    _settled_before_paid_attributions(world)
    plan = _plan_of_one_page(world)
    assert "ix_usage_events_model_seq" in plan, plan
    assert "paid_attributions" not in plan, plan
