"""The ledger invariant through the real intake and settlement path (HTTP, in-process app,
SQLite and PG): after every batch is settled, ledger total == fees of accepted events exactly,
each event's contributor amounts (read back through the aggregated entries' events) == its
contributor pool and == the old synchronous path's per-event split, every aggregated entry ==
the sum of the events it commits to (and its digest), the protocol entries == the rest of the
fees, no negative entries, re-sent batches change nothing, and the day buckets agree."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from app.domain.rewards import contributor_pool, split_integers
from app.durable import gc_paused
from registry.bulkdb import BulkDb
from registry.db.usage_models import (
    LedgerEntry,
    PaidAttribution,
    SettlementDrop,
    UsageBucket,
    UsageEvent,
)
from registry.ledger import LimitMoved, ingest_events, ledger_totals, plan_batch, write_batch
from registry.routes.usage import UsageBatch
from registry.settlement import entry_digest, entry_events
from registry.usage_rules import (
    MAX_BATCH_FEE_MICRO,
    MAX_BUCKET_REWARD_MICRO,
    MAX_FEE_MICRO,
    MAX_LEDGER_TOTAL_MICRO,
    weight_to_ppm,
)
from tests.support.usage_data import UsageWorld, event, usage_world

METHODS = ["influence", "exact-match", "retrieval"]


def _attribution(cids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    weight = st.one_of(
        st.integers(min_value=0, max_value=1000),
        st.floats(min_value=0, max_value=1000, allow_nan=False),
        st.integers(min_value=-5, max_value=-1),  # invalid: negative
    )
    return st.fixed_dictionaries(
        {
            "contributionId": st.sampled_from([*cids, "c_unknown"]),
            "weight": weight,
            "method": st.sampled_from([*METHODS, *METHODS, "bogus"]),
        }
    )


def _events(cids: list[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    one = st.fixed_dictionaries(
        {
            "eventId": st.integers(min_value=0, max_value=400).map(lambda i: f"ev-{i}"),
            "modelId": st.sampled_from(["test-model", "test-model", "test-model", "no-model"]),
            "at": st.sampled_from(
                ["2026-11-01T00:00:00Z", "2026-10-31T23:59:59.999+02:00", "2025-02-28T12:00:00Z"]
            ),
            "feeMicro": st.one_of(
                st.integers(min_value=0, max_value=10**7),
                st.integers(min_value=0, max_value=MAX_FEE_MICRO),
                st.just(-1),
            ),
            "attributions": st.lists(_attribution(cids), min_size=0, max_size=5),
        }
    )
    return st.lists(one, min_size=1, max_size=25)


def _valid(ev: dict[str, Any], cids: set[str]) -> bool:
    """Independent oracle of the validation rules the generator can break."""
    attrs = ev["attributions"]
    pairs = [(a["contributionId"], a["method"]) for a in attrs]
    weights = [weight_to_ppm(a["weight"]) or 0 for a in attrs if a["weight"] >= 0]
    return (
        ev["modelId"] == "test-model"
        and ev["feeMicro"] >= 0
        and bool(attrs)
        and all(a["contributionId"] in cids for a in attrs)
        and all(a["method"] in METHODS for a in attrs)
        and all(a["weight"] >= 0 for a in attrs)
        and sum(weights) > 0
        and len(set(pairs)) == len(pairs)
    )


def event_splits(session: Any) -> dict[tuple[str, str, str], int]:
    """(event id, contribution, method) -> amount, read back through every aggregated
    contributor entry's events; checks that each entry is the sum of the events it commits
    to, their number and its digest, and that no event is counted twice."""
    out: dict[tuple[str, str, str], int] = {}
    entries = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "contributor"))
    for entry in entries:
        splits = entry_events(session, entry)
        assert splits, entry.id
        assert sum(x.amount_micro for x in splits) == entry.amount_micro
        assert len(splits) == entry.events
        assert entry_digest((x.digest, x.amount_micro) for x in splits) == entry.digest
        for x in splits:
            key = (x.event_id, entry.contribution_id, entry.method)
            assert key not in out, key
            out[key] = x.amount_micro
    return out


def old_split(ev: dict[str, Any], share_ppm: int = 700_000) -> dict[tuple[str, str, str], int]:
    """The oracle: the old synchronous path's per-event split (pool by largest remainder over
    the weights in ppm), paid attributions only."""
    weights = [weight_to_ppm(a["weight"]) or 0 for a in ev["attributions"]]
    amounts = split_integers(contributor_pool(ev["feeMicro"], share_ppm), weights)
    return {
        (ev["eventId"], a["contributionId"], a["method"]): amount
        for a, amount in zip(ev["attributions"], amounts, strict=True)
        if amount
    }


def _check_invariant(
    world: UsageWorld,
    expected_fees: dict[str, int],
    events: dict[str, dict[str, Any]] | None = None,
) -> None:
    with world.sessions() as s:
        totals = ledger_totals(s)
        assert totals.negative_entries == 0
        assert totals.events == len(expected_fees)
        assert totals.fees_micro == sum(expected_fees.values())
        assert totals.ledger_micro == totals.fees_micro
        splits = event_splits(s)
        assert s.scalar(select(func.count()).select_from(SettlementDrop)) == 0
        contributor_per_event: dict[str, int] = {}
        for (eid, _, _), amount in splits.items():
            contributor_per_event[eid] = contributor_per_event.get(eid, 0) + amount
        bucket_reward = s.scalar(select(func.coalesce(func.sum(UsageBucket.reward_micro), 0)))
        bucket_shares = s.scalar(select(func.coalesce(func.sum(UsageBucket.share_ppm_sum), 0)))
        stored = dict(s.execute(select(UsageEvent.event_id, UsageEvent.fee_micro)).all())
    assert stored == expected_fees
    for eid, fee in expected_fees.items():
        assert contributor_per_event.get(eid, 0) == contributor_pool(fee, 700_000)
    # Protocol entries (one per model and batch) hold exactly the rest of every fee.
    assert set(contributor_per_event) <= set(expected_fees)
    assert totals.protocol_micro == sum(
        fee - contributor_pool(fee, 700_000) for fee in expected_fees.values()
    )
    assert bucket_reward == totals.contributor_micro
    assert bucket_shares == len(expected_fees) * 1_000_000  # each event's shares add up to 1
    if events is not None:
        oracle: dict[tuple[str, str, str], int] = {}
        for ev in events.values():
            oracle.update(old_split(ev))
        assert splits == oracle


def _run_invariant(world: UsageWorld, batches: st.SearchStrategy[list[dict[str, Any]]]) -> None:
    cids = {c for ids in world.contributions.values() for c in ids}
    expected: dict[str, int] = {}
    posted: dict[str, dict[str, Any]] = {}

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches)
    def check(batch: list[dict[str, Any]]) -> None:
        r = world.post_usage(batch)
        assert r.status_code == 200, r.text
        body = r.json()
        rejected = [x["eventId"] for x in body["rejected"]]
        assert len(body["accepted"]) + len(body["duplicates"]) + len(rejected) == len(batch)
        seen: set[str] = set()
        for ev in batch:
            eid = ev["eventId"]
            if eid in expected or eid in seen:
                assert eid in body["duplicates"]
            elif _valid(ev, cids):
                assert eid in body["accepted"]
                expected[eid] = ev["feeMicro"]
                posted[eid] = ev
                seen.add(eid)
            else:
                assert eid in rejected
        _check_invariant(world, expected, posted)
        # Re-sending the very same batch changes nothing.
        again = world.post_usage(batch).json()
        assert again["accepted"] == []
        stored_ids = [ev["eventId"] for ev in batch if ev["eventId"] in expected]
        assert sorted(again["duplicates"]) == sorted(stored_ids)
        _check_invariant(world, expected, posted)

    check()


@pytest.mark.slow
def test_ledger_invariant_holds_for_random_batches(db_url: str, tmp_path: Path) -> None:
    with usage_world(db_url, tmp_path, contributors=2, per_contributor=3) as world:
        cids = [c for ids in world.contributions.values() for c in ids]
        _run_invariant(world, _events(cids))


def test_gc_paused_restores_the_collector_state() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # someone else switched it off: stays off
    finally:
        gc.enable()


def test_rewards_query_uses_the_partial_owner_index(tmp_path: Path) -> None:
    """Protocol entries are left out of the owner index; the rewards read must still use it."""
    with usage_world(f"sqlite:///{tmp_path / 'r.sqlite3'}", tmp_path) as world:
        with world.sessions() as s:
            plan = s.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM ledger WHERE owner_fingerprint IN ('a', 'b')"
                    " AND kind = 'contributor' AND id > 5 ORDER BY id LIMIT 10"
                )
            ).all()
    assert any("ix_ledger_owner_id" in str(row) for row in plan), plan


# ------------------------------------------------------------------------------ money limits

FULL = 10**15  # the largest fee of one event
PAST = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _batch(prefix: str, cid: str, n: int, *, fee: int = FULL, day: int = 0) -> list[dict[str, Any]]:
    at = PAST - timedelta(days=day)
    return [event(f"{prefix}-{i}", "test-model", [(cid, 1, "influence")], fee_micro=fee, at=at)
            for i in range(n)]  # fmt: skip


def _rejected(body: dict[str, Any]) -> dict[int, set[str]]:
    return {x["index"]: {r["code"] for r in x["reasons"]} for x in body["rejected"]}


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(db_url, tmp_path, contributors=1, per_contributor=2) as w:
        yield w


def test_the_fees_of_one_batch_are_bounded(world: UsageWorld) -> None:
    c = world.ids_of(world.contributors[0])[0]
    n = MAX_BATCH_FEE_MICRO // FULL
    batch = [*_batch("b", c, n + 1), *_batch("free", c, 1, fee=0)]
    body = world.post_usage(batch).json()
    assert len(body["accepted"]) == n + 1 and "free-0" in body["accepted"]
    assert _rejected(body) == {n: {"batch_fees_too_large"}}
    # The rejected event fits into the next batch.
    assert world.post_usage([batch[n]]).json()["accepted"] == [f"b-{n}"]
    _check_invariant(world, {e["eventId"]: e["feeMicro"] for e in batch})


def test_a_full_day_bucket_settles_further_events_to_the_protocol(world: UsageWorld) -> None:
    """The red-team case: maximum fees into one day bucket (SQLite turned the sum into a REAL,
    PostgreSQL answered 500 'bigint out of range'). Intake cannot know the buckets (settlement
    keeps them), so the settler stops the bucket at its limit: the attributions that would
    overfill it are dropped (recorded with the reason) and their amounts go to the protocol,
    so the fees are still conserved."""
    a = world.contributors[0]
    c, other = world.ids_of(a)
    per_event = contributor_pool(FULL, 700_000)
    fits = MAX_BUCKET_REWARD_MICRO // per_event
    first = world.post_usage(_batch("one", c, 100)).json()
    assert len(first["accepted"]) == 100
    second = world.post_usage(_batch("two", c, 100)).json()
    assert len(second["accepted"]) == 100 and not second["rejected"]
    assert world.post_usage(_batch("side", other, 1)).json()["accepted"] == ["side-0"]
    # The same contribution still earns on another day.
    assert world.post_usage(_batch("next", c, 1, day=1)).json()["accepted"] == ["next-0"]
    with world.sessions() as s:
        drops = s.execute(select(SettlementDrop.contribution_id, SettlementDrop.reason)).all()
        assert len(drops) == 200 - fits
        assert set(drops) == {(c, "bucket_full")}
        totals = ledger_totals(s)
        assert totals.ledger_micro == totals.fees_micro == 202 * FULL
        assert totals.contributor_micro == (fits + 2) * per_event
    with world.sessions() as s:
        kinds = s.execute(
            text("SELECT DISTINCT " + ("typeof(reward_micro)" if _sqlite(s) else "'integer'")
                 + " FROM usage_buckets")
        ).scalars().all()  # fmt: skip
        top = s.scalar(select(func.max(UsageBucket.reward_micro)))
    assert kinds == ["integer"]
    assert top == fits * per_event <= MAX_BUCKET_REWARD_MICRO
    usage = world.client.get(
        f"/v1/contributions/{c}/usage?since=2026-10-01&until=2026-11-02", headers=a.headers
    )
    assert usage.status_code == 200, usage.text
    assert usage.json()["totals"] == {"events": fits + 1, "rewardMicro": (fits + 1) * per_event}
    summary = world.client.get("/v1/me/summary", headers=a.headers).json()
    assert summary["rewardMicro"] == (fits + 2) * per_event
    # The full bucket's entries list the events that were paid, none of the dropped ones,
    # from the paid positions and from the usage log alone (entries settled before 0015).
    with world.sessions() as s:
        full = s.scalars(
            select(LedgerEntry).where(LedgerEntry.contribution_id == c, LedgerEntry.events > 1)
        ).all()
        paid = [x.event_id for e in full for x in entry_events(s, e)]
        s.query(PaidAttribution).delete()
        s.flush()
        from_log = [x.event_id for e in full for x in entry_events(s, e)]
        s.rollback()
    assert len(paid) == fits and from_log == paid


def test_the_ledger_total_is_bounded(world: UsageWorld) -> None:
    a = world.contributors[0]
    c = world.ids_of(a)[0]
    per_batch = MAX_BATCH_FEE_MICRO // FULL
    expected: dict[str, int] = {}
    for day in range(MAX_LEDGER_TOTAL_MICRO // MAX_BATCH_FEE_MICRO):  # one bucket per day
        batch = _batch(f"d{day}", c, per_batch, day=day)
        assert len(world.post_usage(batch).json()["accepted"]) == per_batch
        expected.update((e["eventId"], e["feeMicro"]) for e in batch)
    last = [*_batch("over", c, 1, fee=1, day=20), *_batch("zero", c, 1, fee=0, day=20)]
    body = world.post_usage(last).json()
    assert body["accepted"] == ["zero-0"]
    assert _rejected(body) == {0: {"ledger_full"}}
    expected["zero-0"] = 0
    _check_invariant(world, expected)
    with world.sessions() as s:
        assert ledger_totals(s).ledger_micro == MAX_LEDGER_TOTAL_MICRO
    summary = world.client.get("/v1/me/summary", headers=a.headers).json()
    assert summary["rewardMicro"] == contributor_pool(MAX_LEDGER_TOTAL_MICRO, 700_000)
    page = world.client.get("/v1/me/rewards?limit=1000", headers=a.headers).json()
    assert sum(i["amountMicro"] for i in page["items"]) == summary["rewardMicro"]


def test_a_limit_used_up_by_a_concurrent_batch_is_rechecked_under_the_lock(
    world: UsageWorld,
) -> None:
    """Batch A is planned while the ledger has room; batch B takes the room and commits; A's
    write then finds the ledger full under the ledger lock and asks for a careful redo."""
    c = world.ids_of(world.contributors[0])[0]
    per_batch = MAX_BATCH_FEE_MICRO // FULL
    for day in range(MAX_LEDGER_TOTAL_MICRO // MAX_BATCH_FEE_MICRO - 1):
        world.post_usage(_batch(f"d{day}", c, per_batch, day=day))
    body = {"events": _batch("a", c, per_batch, day=15)}
    events_a = UsageBatch.model_validate(body).events
    events_b = UsageBatch.model_validate({"events": _batch("b", c, per_batch, day=16)}).events
    operator = world.operator.fingerprint
    with world.sessions() as sa:
        db = BulkDb(sa)
        planned, rows = plan_batch(db, operator, events_a, 700_000)
        assert len(planned.accepted) == per_batch
        with world.sessions() as sb:
            ingest_events(sb, operator=operator, events=events_b, share_ppm=700_000)
            sb.commit()
        with pytest.raises(LimitMoved):
            write_batch(sa, db, rows)
        sa.rollback()
        redo = ingest_events(
            sa, operator=operator, events=events_a, share_ppm=700_000, careful=True
        )
        sa.commit()
    world.settle()
    assert redo.accepted == []
    assert {r.reasons[0].code for r in redo.rejected} == {"ledger_full"}
    with world.sessions() as s:
        assert ledger_totals(s).ledger_micro == MAX_LEDGER_TOTAL_MICRO


def _sqlite(session: Any) -> bool:
    return bool(session.get_bind().dialect.name == "sqlite")
