"""The ledger invariant through the real ingestion path (HTTP, in-process app, SQLite and PG):
for every batch, ledger total == fees of accepted events exactly, each event's contributor
entries == its contributor pool, the protocol entries == the rest of the fees, no negative
entries, re-sent batches change nothing, and the day buckets agree with the ledger."""

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

from app.domain.rewards import contributor_pool
from app.durable import gc_paused
from registry.bulkdb import BulkDb
from registry.db.usage_models import LedgerEntry, UsageBucket, UsageEvent
from registry.ledger import LimitMoved, ingest_events, ledger_totals, plan_batch, write_batch
from registry.routes.usage import UsageBatch
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


def _check_invariant(world: UsageWorld, expected_fees: dict[str, int]) -> None:
    with world.sessions() as s:
        totals = ledger_totals(s)
        assert totals.negative_entries == 0
        assert totals.events == len(expected_fees)
        assert totals.fees_micro == sum(expected_fees.values())
        assert totals.ledger_micro == totals.fees_micro
        contributor_per_event = dict(
            s.execute(
                select(LedgerEntry.event_id, func.sum(LedgerEntry.amount_micro))
                .where(LedgerEntry.kind == "contributor")
                .group_by(LedgerEntry.event_id)
            ).all()
        )
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


def _run_invariant(world: UsageWorld, batches: st.SearchStrategy[list[dict[str, Any]]]) -> None:
    cids = {c for ids in world.contributions.values() for c in ids}
    expected: dict[str, int] = {}

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
                seen.add(eid)
            else:
                assert eid in rejected
        _check_invariant(world, expected)
        # Re-sending the very same batch changes nothing.
        again = world.post_usage(batch).json()
        assert again["accepted"] == []
        stored_ids = [ev["eventId"] for ev in batch if ev["eventId"] in expected]
        assert sorted(again["duplicates"]) == sorted(stored_ids)
        _check_invariant(world, expected)

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


def test_a_full_day_bucket_rejects_further_events(world: UsageWorld) -> None:
    """The red-team case: maximum fees into one day bucket (SQLite turned the sum into a REAL,
    PostgreSQL answered 500 'bigint out of range'). Now the bucket stops at its limit."""
    a = world.contributors[0]
    c, other = world.ids_of(a)
    per_event = contributor_pool(FULL, 700_000)
    fits = MAX_BUCKET_REWARD_MICRO // per_event
    first = world.post_usage(_batch("one", c, 100)).json()
    assert len(first["accepted"]) == 100
    second = world.post_usage([*_batch("two", c, 100), *_batch("side", other, 1)]).json()
    assert second["accepted"] == [*(f"two-{i}" for i in range(fits - 100)), "side-0"]
    assert _rejected(second) == {i: {"bucket_full"} for i in range(fits - 100, 100)}
    assert second["rejected"][0]["reasons"][0]["path"] == "attributions[0]"
    # The same contribution still earns on another day.
    assert world.post_usage(_batch("next", c, 1, day=1)).json()["accepted"] == ["next-0"]
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
    assert redo.accepted == []
    assert {r.reasons[0].code for r in redo.rejected} == {"ledger_full"}
    with world.sessions() as s:
        assert ledger_totals(s).ledger_micro == MAX_LEDGER_TOTAL_MICRO


def _sqlite(session: Any) -> bool:
    return bool(session.get_bind().dialect.name == "sqlite")
