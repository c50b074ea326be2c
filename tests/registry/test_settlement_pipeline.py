"""The pipelined settler (PostgreSQL's default; here on both databases): a chunk planned in
the background is used only if it is still current under the watermark lock, so a stale plan
never settles an event twice and a contribution rejected after planning is still dropped."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from registry import settlement
from registry.db import writegate
from registry.db.models import STATE_REJECTED, Contribution
from registry.db.session import make_engine, migrate
from registry.db.usage_models import LedgerEntry, PaidAttribution, SettlementDrop
from registry.ledger import RECEIVED_SQL, ledger_totals
from registry.settlement import (
    PLANNING_SWITCH_INTERVAL_S,
    Settler,
    _short_switch_interval,
    entry_events,
    plan_next,
    settle_chunk,
    settle_once,
    settle_pending,
    settlement_status,
    unpack_positions,
)
from tests.registry.conftest import fresh_pg_database
from tests.registry.test_ledger import event_splits, old_split
from tests.support.usage_data import UsageWorld, event, usage_world

SHARE = 700_000
NOW = datetime.now(UTC).replace(microsecond=0)
METHODS = ("influence", "exact-match", "retrieval")


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(
        db_url, tmp_path, contributors=2, per_contributor=3, settle_in_process=False
    ) as w:
        yield w


def _post(world: UsageWorld, tag: str, n: int, seed: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(seed)
    cids = [c for ids in world.contributions.values() for c in ids]
    batch = []
    for i in range(n):
        picked = rng.sample(cids, rng.randint(1, 3))
        attrs = [(c, rng.choice([1, 2, 3, 0.25]), rng.choice(METHODS)) for c in picked]
        at = NOW - timedelta(days=rng.randint(0, 5), minutes=rng.randint(0, 600))
        batch.append(
            event(f"{tag}-{i}", "test-model", attrs, fee_micro=rng.randint(0, 10**7), at=at)
        )
    body = world.post_usage(batch, settle=False).json()
    assert len(body["accepted"]) == n, body
    return {e["eventId"]: e for e in batch}


def _settle_with(world: UsageWorld, plan: Any) -> int:
    with world.sessions() as s:
        result = settle_chunk(s, share_ppm=SHARE, limit=1000, planned=plan)
        s.commit()
    return result.events


def test_pipelined_settlement_equals_the_old_split(world: UsageWorld) -> None:
    posted: dict[str, dict[str, Any]] = {}
    for k in range(4):
        posted |= _post(world, f"b{k}", 50, seed=k)
    # chunks of 7: many chunks, each planned in the background while the one before is written
    assert settle_pending(world.sessions, share_ppm=SHARE, limit=7, pipelined=True) == 200
    with world.sessions() as s:
        assert settlement_status(s).unsettled == 0
        totals = ledger_totals(s)
        assert totals.events == 200
        assert (
            totals.ledger_micro == totals.fees_micro == sum(e["feeMicro"] for e in posted.values())
        )
        oracle: dict[tuple[str, str, str], int] = {}
        for ev in posted.values():
            oracle.update(old_split(ev))
        assert event_splits(s) == oracle


def test_the_planner_runs_with_a_short_switch_interval_and_restores_it(
    world: UsageWorld,
) -> None:
    assert PLANNING_SWITCH_INTERVAL_S is not None
    before = sys.getswitchinterval()
    assert before > PLANNING_SWITCH_INTERVAL_S  # the interpreter's default (5 ms)
    inside: list[float] = []
    first_in, second_out = threading.Event(), threading.Event()

    def overlapping() -> None:  # holders overlap: only the last one out restores it
        with _short_switch_interval():
            inside.append(sys.getswitchinterval())
            first_in.set()
            second_out.wait(10)
            inside.append(sys.getswitchinterval())

    t = threading.Thread(target=overlapping)
    t.start()
    assert first_in.wait(10)
    with _short_switch_interval():
        inside.append(sys.getswitchinterval())
    second_out.set()
    t.join(10)
    assert inside == pytest.approx([PLANNING_SWITCH_INTERVAL_S] * 3)
    assert sys.getswitchinterval() == before
    _post(world, "s", 30, seed=5)
    assert settle_pending(world.sessions, share_ppm=SHARE, limit=7, pipelined=True) == 30
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the writer gate is SQLite's
def test_sqlite_splits_the_chunk_before_taking_the_writer_gate(
    world: UsageWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intake's batches of the process wait for the settler's writes only, not its split."""
    engine = world.sessions.kw["bind"]
    assert engine.dialect.name == "sqlite"
    posted = _post(world, "g", 20, seed=7)
    gate = writegate._gate(engine)
    held: list[bool] = []
    real = settlement._plan

    def watched(*args: Any, **kwargs: Any) -> Any:
        held.append(gate.locked())
        return real(*args, **kwargs)

    monkeypatch.setattr(settlement, "_plan", watched)
    assert settle_once(world.sessions, share_ppm=SHARE, limit=1000).events == 20
    assert held == [False]  # split once, outside the gate, and that plan was written
    with world.sessions() as s:
        assert ledger_totals(s).ledger_micro == sum(e["feeMicro"] for e in posted.values())
        oracle: dict[tuple[str, str, str], int] = {}
        for ev in posted.values():
            oracle.update(old_split(ev))
        assert event_splits(s) == oracle


def test_a_plan_of_an_already_settled_chunk_is_not_used(world: UsageWorld) -> None:
    posted = _post(world, "a", 20, seed=1)
    stale = plan_next(world.sessions, 0, share_ppm=SHARE, limit=1000)
    assert stale is not None and stale.events == 20
    assert _settle_with(world, None) == 20
    with world.sessions() as s:
        before = ledger_totals(s)
    # the watermark moved past the plan's start: nothing left to settle, nothing settled twice
    assert _settle_with(world, stale) == 0
    with world.sessions() as s:
        after = ledger_totals(s)
    assert after == before
    assert after.ledger_micro == sum(e["feeMicro"] for e in posted.values())


def test_a_contribution_rejected_after_planning_is_dropped(world: UsageWorld) -> None:
    posted = _post(world, "r", 30, seed=2)
    plan = plan_next(world.sessions, 0, share_ppm=SHARE, limit=1000)
    assert plan is not None
    gone = world.contributions[world.contributors[0].fingerprint][0]
    named = [
        e for e in posted.values() if any(a["contributionId"] == gone for a in e["attributions"])
    ]
    assert named  # the seed attributes it somewhere
    with world.sessions() as s:
        s.execute(update(Contribution).where(Contribution.id == gone).values(state=STATE_REJECTED))
        s.commit()
    assert _settle_with(world, plan) == 30
    with world.sessions() as s:
        drops = s.execute(select(SettlementDrop.contribution_id, SettlementDrop.reason)).all()
        totals = ledger_totals(s)
        paid = {k for k, v in event_splits(s).items() if v}
    assert drops and set(drops) == {(gone, "contribution_not_accepted")}
    assert all(cid != gone for _, cid, _ in paid)
    assert totals.ledger_micro == totals.fees_micro == sum(e["feeMicro"] for e in posted.values())


def test_the_paid_attributions_are_the_events_each_entry_lists(world: UsageWorld) -> None:
    """The settler writes one paid_attributions row per attribution it paid: none for one
    that got nothing (a zero fee, a tiny fee split three ways) or was dropped; and every
    entry lists the same events from them as from the usage log alone."""
    posted = _post(world, "p", 120, seed=4)
    cids = [c for ids in world.contributions.values() for c in ids]
    rng = random.Random(5)
    tiny = [
        event(f"t-{i}", "test-model",
              [(c, 1, rng.choice(METHODS)) for c in rng.sample(cids, 3)],
              fee_micro=rng.randint(1, 4), at=NOW - timedelta(hours=i))
        for i in range(30)
    ]  # fmt: skip
    assert len(world.post_usage(tiny, settle=False).json()["accepted"]) == 30
    gone = cids[0]
    with world.sessions() as s:
        s.execute(update(Contribution).where(Contribution.id == gone).values(state=STATE_REJECTED))
        s.commit()
    with world.sessions() as s:
        while settle_chunk(s, share_ppm=SHARE, limit=40).events:  # several chunks
            s.commit()
        s.commit()
    with world.sessions() as s:
        seq_of = dict(s.execute(text("SELECT event_id, seq FROM usage_events")).all())
        rows = s.execute(
            select(PaidAttribution.contribution_id, PaidAttribution.method,
                   PaidAttribution.chunk, PaidAttribution.positions)
        ).all()  # fmt: skip
        chunks = s.scalars(select(LedgerEntry.seq_to).distinct()).all()
        paid = {(c, m, q) for c, m, _k, p in rows for q in unpack_positions(p)}
        listed = {(c, m, int(seq_of[e])) for (e, c, m) in event_splits(s)}
        entries = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "contributor")).all()
        from_paid = {e.id: entry_events(s, e) for e in entries}
    assert len(chunks) > 3
    assert {k for _c, _m, k, _p in rows} <= set(chunks)  # each row names its chunk's end
    assert sum(len(unpack_positions(p)) for *_r, p in rows) == len(paid) == len(listed)
    assert paid == listed
    assert all(c != gone for c, _m, _q in paid)
    named = {
        (a["contributionId"], a["method"], int(seq_of[e["eventId"]]))
        for e in [*posted.values(), *tiny]
        for a in e["attributions"]
    }
    unpaid = named - paid
    assert any(c == gone for c, _m, _q in unpaid)  # dropped
    assert any(c != gone for c, _m, _q in unpaid)  # paid nothing
    with world.sessions() as s:
        s.query(PaidAttribution).delete()  # as if settled before migration 0015
        s.commit()
        from_log = {e.id: entry_events(s, e) for e in entries}
    assert from_log == from_paid


def test_an_intake_commit_wakes_a_settler_of_another_connection(
    pg_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: intake notifies, the settler listens; its poll (a minute here) is only the
    backstop. (SQLite has no cross-process wake-up: its settler is woken in-process.)"""
    with usage_world(fresh_pg_database(pg_url), tmp_path, settle_in_process=False) as world:
        settler = Settler(world.sessions, SHARE, poll_s=60.0)
        settler.start()
        try:
            time.sleep(1.0)  # listening by now (its first wake found nothing to settle)
            _post(world, "w", 10, seed=3)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with world.sessions() as s:
                    if settlement_status(s).settled_seq >= 10:
                        break
                time.sleep(0.05)
            with world.sessions() as s:
                assert settlement_status(s).unsettled == 0
        finally:
            settler.stop()


def test_the_running_fee_total_reads_an_index_range_before_any_analyze(pg_url: str) -> None:
    """Intake reads the fees appended since its connection last looked, every batch. Before
    the log's first ANALYZE, an open range `seq > :last` was planned as a scan of the whole
    log (its cost grew with the log: the one-worker fill slowed 12,800 -> 5,600 ev/s)."""
    engine = make_engine(fresh_pg_database(pg_url))
    try:
        migrate(engine)
        with engine.begin() as c:
            c.execute(text("ALTER TABLE usage_events SET (autovacuum_enabled = false)"))
            c.execute(
                text(
                    "INSERT INTO usage_events (event_id, model_id, at, fee_micro, "
                    "operator_fingerprint, demo, received_at, attributions, seq) "
                    "SELECT 'e' || g, 'm', now(), 1, 'o', false, now(), '[]', g "
                    "FROM generate_series(1, 50000) g"
                )
            )
        with engine.connect() as c:
            never_analyzed = c.execute(
                text("SELECT reltuples < 0 FROM pg_class WHERE relname = 'usage_events'")
            ).scalar_one()
            plan = "\n".join(
                c.execute(text(f"EXPLAIN {RECEIVED_SQL.text}"), {"last": 49_000}).scalars()
            )
    finally:
        engine.dispose()
    assert never_analyzed
    assert "Seq Scan" not in plan, plan
