"""seed-demo: labelled demo data through the real ingestion path, idempotent, visible in reads."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from registry.db.models import STATE_SUBMITTED, Contribution
from registry.db.usage_models import LedgerEntry, Model, UsageEvent
from registry.ledger import ledger_totals
from registry.seed import DEMO_MODELS, seed_demo
from tests.support.usage_data import add_contributions, usage_world

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def test_seed_demo_is_labelled_exact_and_idempotent(db_url: str, tmp_path: Path) -> None:
    with usage_world(db_url, tmp_path, contributors=2, per_contributor=2) as world:
        a = world.contributors[0]
        with world.sessions() as s:
            pending = add_contributions(s, a.fingerprint, 1, state=STATE_SUBMITTED)[0]
            # Accepted 40 days before NOW: usage of the last 30 days is simulated.
            s.execute(update(Contribution).values(updated_at=NOW - timedelta(days=40)))
            s.commit()
        first = seed_demo(world.sessions, days=30, now=NOW)
        assert first.contributions == 4
        assert first.accepted > 4 * 30  # a few events per contribution, model and day
        assert first.rejected == 0
        with world.sessions() as s:
            demo_models = s.scalars(select(Model).where(Model.demo.is_(True))).all()
            assert {m.id for m in demo_models} == {m.id for m in DEMO_MODELS}
            assert all(m.id.startswith("demo-") and "demo" in m.name.lower() for m in demo_models)
            assert s.scalar(select(func.count()).where(UsageEvent.demo.is_(False))) == 0
            assert s.scalar(select(func.count()).where(LedgerEntry.demo.is_(False))) == 0
            oldest, newest = s.execute(
                select(func.min(UsageEvent.at), func.max(UsageEvent.at))
            ).one()
            assert s.scalar(select(func.count()).where(LedgerEntry.contribution_id == pending)) == 0
            totals = ledger_totals(s)
        assert totals.ledger_micro == totals.fees_micro > 0
        assert totals.events == first.accepted
        oldest = oldest.replace(tzinfo=UTC) if oldest.tzinfo is None else oldest
        newest = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
        assert NOW - timedelta(days=30) < oldest and newest <= NOW

        again = seed_demo(world.sessions, days=30, now=NOW)
        assert again.accepted == 0 and again.duplicates == first.accepted
        with world.sessions() as s:
            assert ledger_totals(s) == totals

        # The contributor sees the demo usage in the normal reads.
        cid = world.ids_of(a)[0]
        r = world.client.get(
            f"/v1/contributions/{cid}/usage",
            params={"since": "2026-10-28", "until": "2026-11-26"},
            headers=a.headers,
        ).json()
        assert {s["modelId"] for s in r["series"]} == {m.id for m in DEMO_MODELS}
        assert r["totals"]["rewardMicro"] > 0
        summary = world.client.get("/v1/me/summary", headers=a.headers).json()
        assert all(m["demo"] for m in summary["models"])
        assert summary["rewardMicro"] > 0


@pytest.mark.slow
def test_seed_demo_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "registry.cli", "seed-demo", "--db", db],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "demo data: 3 models, 0 accepted contributions" in done.stdout
    from registry.db.session import make_engine, make_sessionmaker

    engine = make_engine(db)
    try:
        with make_sessionmaker(engine)() as s:
            assert s.scalar(select(func.count()).select_from(Model)) == len(DEMO_MODELS)
    finally:
        engine.dispose()


def _buckets(world: object, cids: list[str]) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    from registry.db.usage_models import UsageBucket

    with world.sessions() as s:  # type: ignore[attr-defined]
        return {
            (str(c), str(d), m, me): (int(e), int(r))
            for c, d, m, me, e, r in s.execute(
                select(
                    UsageBucket.contribution_id,
                    UsageBucket.bucket_start,
                    UsageBucket.model_id,
                    UsageBucket.method,
                    UsageBucket.events,
                    UsageBucket.reward_micro,
                ).where(UsageBucket.contribution_id.in_(cids))
            )
        }


def test_demo_usage_starts_at_acceptance_and_past_days_never_change(
    db_url: str, tmp_path: Path
) -> None:
    with usage_world(db_url, tmp_path, contributors=1, per_contributor=2) as world:
        old, new = world.ids_of(world.contributors[0])
        accepted = {old: NOW - timedelta(days=12, hours=5), new: NOW - timedelta(minutes=1)}
        with world.sessions() as s:
            for cid, at in accepted.items():
                s.execute(update(Contribution).where(Contribution.id == cid).values(updated_at=at))
            s.commit()
        seed_demo(world.sessions, now=NOW)
        before = _buckets(world, [old, new])
        seed_demo(world.sessions, now=NOW + timedelta(minutes=30))
        seed_demo(world.sessions, now=NOW + timedelta(days=3, hours=2))
        after = _buckets(world, [old, new])
        with world.sessions() as s:
            firsts = dict(
                s.execute(
                    select(LedgerEntry.contribution_id, func.min(LedgerEntry.at))
                    .where(LedgerEntry.contribution_id.in_([old, new]))
                    .group_by(LedgerEntry.contribution_id)
                ).all()
            )
    # No use before acceptance; the one accepted a minute ago was used within half an hour.
    for cid, first in firsts.items():
        first = first.replace(tzinfo=UTC) if first.tzinfo is None else first
        assert first >= accepted[cid], cid
    assert new in firsts and firsts[new].replace(tzinfo=UTC) < NOW + timedelta(minutes=30)
    days = {k[1] for k in after if k[0] == old}  # usage spread over the days since then
    assert min(days) >= str(accepted[old].date()) and len(days) >= 8
    # Days before the first run's day are exactly as they were; later runs only add.
    past = {k: v for k, v in before.items() if k[1] < str(NOW.date())}
    assert past and {k: after[k] for k in past} == past
    assert {k for k in after if k[1] < str(NOW.date())} == set(past)
    assert sum(e for e, _r in after.values()) > sum(e for e, _r in before.values())
