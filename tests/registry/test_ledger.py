"""The ledger invariant through the real ingestion path (HTTP, in-process app, SQLite and PG):
for every batch, ledger total == fees of accepted events exactly, each event's contributor
entries == its contributor pool, the protocol entries == the rest of the fees, no negative
entries, re-sent batches change nothing, and the day buckets agree with the ledger."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from app.domain.gcpause import gc_paused
from app.domain.rewards import contributor_pool
from registry.db.usage_models import LedgerEntry, UsageBucket, UsageEvent
from registry.ledger import MAX_FEE_MICRO, ledger_totals, weight_to_ppm
from tests.support.usage_data import UsageWorld, usage_world

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
