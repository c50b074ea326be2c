"""seed-demo: labelled demo data through the real ingestion path, idempotent, visible in reads."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from registry.db.models import STATE_SUBMITTED
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
