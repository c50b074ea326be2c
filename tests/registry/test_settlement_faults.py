"""Settlement and intake under kill -9, on real processes (SQLite and PostgreSQL).

- A real registry (`serve --no-settler`) takes batches, retries and duplicates while a real
  `contributor-registry settle` process is killed with SIGKILL at random moments and started
  again, many times. At the end every event is settled exactly once: the ledger total equals
  the fees, every aggregated entry is the sum of the events it commits to, and every event's
  split equals the old synchronous path's.
- The registry itself is killed with SIGKILL while batches are in flight: every batch whose
  answer arrived is stored, and sending every batch again is idempotent.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from registry.db.session import make_engine, migrate
from registry.db.usage_models import UsageBucket, UsageEvent
from registry.ledger import ledger_totals
from registry.settlement import settlement_status
from tests.registry.test_ledger import event_splits, old_split
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.usage_data import add_contributions, event

pytestmark = pytest.mark.slow
METHODS = ("influence", "exact-match", "retrieval")
NOW = datetime.now(UTC).replace(microsecond=0)


def _batch(rng: random.Random, tag: str, cids: list[str], n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        picked = rng.sample(cids, rng.randint(1, 3))
        attrs = [(c, rng.choice([1, 2, 3, 0.25, 0.5]), rng.choice(METHODS)) for c in picked]
        at = NOW - timedelta(days=rng.randint(0, 9), minutes=rng.randint(0, 600))
        out.append(event(f"{tag}-{i}", "test-model", attrs, fee_micro=rng.randint(0, 10**7), at=at))
    return out


def _settle_process(db_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "registry.cli", "settle", "--db", db_url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _first_line(settler: subprocess.Popen[str]) -> str:
    """The settler's first line of output; if it ended without one, its stderr says why."""
    assert settler.stdout is not None and settler.stderr is not None
    line = settler.stdout.readline()
    if not line:
        settler.wait(timeout=30)
        raise AssertionError(
            f"the settler exited ({settler.returncode}) before settling: {settler.stderr.read()}"
        )
    return line


def _world(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        with sessionmaker(engine)() as s:
            return add_contributions(s, Contributor().fingerprint, 6)
    finally:
        engine.dispose()


def _check_settled(db_url: str, posted: dict[str, dict[str, Any]]) -> None:
    engine = make_engine(db_url)
    try:
        with sessionmaker(engine)() as s:
            status = settlement_status(s)
            assert status.unsettled == 0
            totals = ledger_totals(s)
            assert totals.events == len(posted)
            assert totals.fees_micro == sum(e["feeMicro"] for e in posted.values())
            assert totals.ledger_micro == totals.fees_micro
            oracle: dict[tuple[str, str, str], int] = {}
            for ev in posted.values():
                oracle.update(old_split(ev))
            assert event_splits(s) == oracle
            buckets = s.scalar(select(func.coalesce(func.sum(UsageBucket.reward_micro), 0)))
            assert buckets == totals.contributor_micro
    finally:
        engine.dispose()


def test_settlement_is_exactly_once_when_the_settler_is_killed(db_url: str, tmp_path: Path) -> None:
    cids = _world(db_url)
    operator = Contributor()
    rng = random.Random(13)
    server = RegistryProcess(
        db_url,
        tmp_path / "blobs",
        extra_args=(
            "--operator-key", operator.public_key, "--rate-limit", "0", "--no-settler",
        ),
    )  # fmt: skip
    posted: dict[str, dict[str, Any]] = {}
    sent: list[list[dict[str, Any]]] = []
    kills = 0
    with server, httpx.Client(base_url=server.base_url, timeout=60) as http:
        operator.sign_in(cast(Any, http))
        r = http.post(
            "/v1/models", json={"id": "test-model", "name": "T"}, headers=operator.headers
        )
        assert r.status_code == 201, r.text
        midway = 0
        for round_ in range(24):
            batch = _batch(rng, f"r{round_}", cids, 400)
            if sent and rng.random() < 0.5:  # a retry of an earlier batch, plus new ones
                batch = rng.choice(sent)[:100] + batch
            r = http.post("/v1/usage", json={"events": batch}, headers=operator.headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["rejected"] == []
            for ev in batch:
                if ev["eventId"] in body["accepted"]:
                    posted[ev["eventId"]] = ev
                else:
                    assert ev["eventId"] in posted
            sent.append(batch)
            # A settler that has committed its first chunk, killed a moment later: mostly
            # in the middle of a later chunk's transaction.
            settler = _settle_process(db_url, "--chunk", "97", "--poll", "0.05")
            try:
                assert _first_line(settler).startswith("settled ")
                time.sleep(rng.uniform(0.0, 0.03))
            finally:
                settler.send_signal(signal.SIGKILL)
                settler.communicate(timeout=10)
            kills += 1
            status = http.get("/v1/usage/settlement", headers=operator.headers).json()
            midway += status["unsettledEvents"] > 0
    # Most kills left work behind (the settler was busy when it died).
    assert midway >= 8, midway
    assert kills == 24
    done = _settle_process(db_url, "--once")
    done.communicate(timeout=120)
    assert done.returncode == 0
    _check_settled(db_url, posted)


def test_intake_survives_kill_9_with_batches_in_flight(db_url: str, tmp_path: Path) -> None:
    cids = _world(db_url)
    operator = Contributor()
    rng = random.Random(7)
    args = ("--operator-key", operator.public_key, "--rate-limit", "0", "--no-settler")
    server = RegistryProcess(db_url, tmp_path / "blobs", extra_args=args)
    batches = [_batch(rng, f"b{k}", cids, 200) for k in range(40)]
    answered: dict[int, dict[str, Any]] = {}
    lock = threading.Lock()
    with server:
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            operator.sign_in(cast(Any, http))
            r = http.post(
                "/v1/models", json={"id": "test-model", "name": "T"}, headers=operator.headers
            )
            assert r.status_code == 201, r.text
        headers = dict(operator.headers)

        def client(k0: int) -> None:
            with httpx.Client(base_url=server.base_url, timeout=60) as http:
                for k in range(k0, len(batches), 3):
                    try:
                        r = http.post("/v1/usage", json={"events": batches[k]}, headers=headers)
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        with lock:
                            answered[k] = r.json()

        workers = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        for w in workers:
            w.start()
        while len(answered) < 6:
            time.sleep(0.01)
        server.kill(signal.SIGKILL)
        for w in workers:
            w.join()
        assert 6 <= len(answered) < len(batches)
        engine = make_engine(db_url)
        try:
            with sessionmaker(engine)() as s:
                stored = set(s.scalars(select(UsageEvent.event_id)).all())
        finally:
            engine.dispose()
        for body in answered.values():  # every answered batch is there
            assert set(body["accepted"]) <= stored
        server.start()
        posted: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            operator.sign_in(cast(Any, http))
            for k, batch in enumerate(batches):  # every batch again: idempotent
                r = http.post("/v1/usage", json={"events": batch}, headers=operator.headers)
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["rejected"] == []
                if k in answered:
                    assert body["accepted"] == []
                for ev in batch:
                    assert (ev["eventId"] in stored) == (ev["eventId"] in body["duplicates"])
                    posted[ev["eventId"]] = ev
    done = _settle_process(db_url, "--once")
    done.communicate(timeout=120)
    assert done.returncode == 0
    _check_settled(db_url, posted)
