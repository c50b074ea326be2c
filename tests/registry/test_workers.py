"""`contributor-registry serve --workers N` on PostgreSQL: rate limits, intake lookups and the
settler hold across real worker processes; SQLite refuses more than one worker.

Each test pins an HTTP client to one worker: a client keeps one connection, and the worker
that owns the server side of it is found in /proc (the socket inode of the accepted
connection among the worker processes' file descriptors).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from registry.cli import main
from registry.db.models import STATE_ACCEPTED, STATE_REJECTED, Contribution
from registry.db.session import make_engine, make_sessionmaker
from registry.db.usage_models import Model
from registry.ledger import AttributionIn, EventIn, forget_contribution, ingest_with_retry
from registry.ratelimit import SharedTokenBuckets
from tests.registry.conftest import fresh_pg_database
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata
from tests.support.registry_server import RegistryProcess
from tests.support.usage_data import add_contributions, ensure_key, event

pytestmark = pytest.mark.postgres

FILES = {"a.csv": b"x,y\n1,2\n", "b.txt": b"hello workers\n"}


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _server_socket_inode(server_port: int, client_port: int) -> int | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, remote = cols[1], cols[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return int(cols[9])
    return None


def _owner(server: RegistryProcess, client_port: int) -> int | None:
    """The pid of the worker that accepted the connection from `client_port`."""
    assert server.proc is not None
    inode = _server_socket_inode(server.port, client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in _children(server.proc.pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def pinned_clients(server: RegistryProcess, n: int) -> list[httpx.Client]:
    """One keep-alive client per worker, for `n` different workers (waits for them to start)."""
    found: dict[int, httpx.Client] = {}
    spare: list[httpx.Client] = []
    deadline = time.monotonic() + 60
    try:
        while len(found) < n:
            assert time.monotonic() < deadline, f"only {len(found)} of {n} workers answered"
            client = httpx.Client(
                base_url=server.base_url,
                timeout=30,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            r = client.get("/v1/health")
            assert r.status_code == 200
            port = r.extensions["network_stream"].get_extra_info("client_addr")[1]
            pid = _owner(server, port)
            if pid is None or pid in found:
                spare.append(client)
                time.sleep(0.05)
            else:
                found[pid] = client
    finally:
        for c in spare:
            c.close()
    return list(found.values())


@pytest.fixture
def pg_workers(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Contributor]]:
    """A fresh database and an operator key for `serve --workers 2`."""
    yield fresh_pg_database(pg_url), Contributor()


def _start(db: str, tmp_path: Path, *args: str) -> RegistryProcess:
    server = RegistryProcess(db, tmp_path / "blobs", extra_args=("--workers", "2", *args))
    server.start()
    return server


def test_more_than_one_worker_needs_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    assert main(["serve", "--db", db, "--blobs", str(tmp_path / "b"), "--workers", "2"]) == 2
    assert "--workers 2 needs PostgreSQL" in capsys.readouterr().err
    assert main(["serve", "--db", db, "--blobs", str(tmp_path / "b"), "--workers", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert not (tmp_path / "r.sqlite3").exists()  # refused before anything was made


def test_rate_limit_holds_in_total_across_workers(
    pg_workers: tuple[str, Contributor], tmp_path: Path
) -> None:
    db, _ = pg_workers
    limit = 10
    server = _start(db, tmp_path, "--rate-limit", str(limit))
    try:
        clients = pinned_clients(server, 2)
        # Both clients are the same caller (one IP): one budget of `limit` per minute in total.
        statuses: list[list[int]] = [[], []]
        for i in range(3 * limit):
            k = i % 2
            statuses[k].append(clients[k].get("/v1/datanets").status_code)
        allowed = sum(s.count(200) for s in statuses)
        # The burst is `limit`; at most one more token refills during the few seconds here.
        assert limit <= allowed <= limit + 1, statuses
        assert all(s.count(429) > 0 for s in statuses), statuses  # each worker refused some
        for c in clients:
            c.close()
    finally:
        server.kill()


def _sign_in(client: httpx.Client, who: Contributor) -> None:
    who.sign_in(client)


def _upload(client: httpx.Client, who: Contributor, cid: str, data: bytes) -> None:
    sha = hashlib.sha256(data).hexdigest()
    r = client.post(
        "/v1/uploads/",
        headers={
            **who.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Upload-Metadata": tus_metadata(sha, cid),
        },
    )
    assert r.status_code == 201, r.text
    r = client.patch(
        r.headers["location"],
        content=data,
        headers={
            **who.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code == 204, r.text


def test_model_and_acceptance_through_one_worker_are_known_to_the_other(
    pg_workers: tuple[str, Contributor], tmp_path: Path
) -> None:
    """Worker B looks up a model and a contribution before they exist / are accepted; worker A
    registers the model and accepts the contribution (signed create, tus upload through the
    raw-body protocol, finalize); B's very next batch accepts usage of both, and the one
    settler (in the serve process) settles it."""
    db, operator = pg_workers
    server = _start(db, tmp_path, "--operator-key", operator.public_key)
    try:
        a, b = pinned_clients(server, 2)
        alice = Contributor()
        _sign_in(a, alice)
        _sign_in(b, operator)  # its token is valid on every worker
        body = contribution_body(alice.key, FILES, registry=server.base_url)
        r = a.post("/v1/contributions", json=body, headers=alice.headers)
        assert r.status_code == 201, r.text
        cid = r.json()["id"]

        def usage(eid: str) -> dict[str, object]:
            r = b.post(
                "/v1/usage",
                json={"events": [event(eid, "w-model", [(cid, 1.0, "influence")])]},
                headers=operator.headers,
            )
            assert r.status_code == 200, r.text
            out: dict[str, object] = r.json()
            return out

        before = usage("e-before")
        assert before["accepted"] == [] and len(before["rejected"]) == 1  # type: ignore[arg-type]
        codes = {x["code"] for x in before["rejected"][0]["reasons"]}  # type: ignore[index]
        assert "unknown_model" in codes, codes

        r = a.post("/v1/models", json={"id": "w-model", "name": "W"}, headers=operator.headers)
        assert r.status_code == 201, r.text
        for data in FILES.values():
            _upload(a, alice, cid, data)
        r = a.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
        assert r.status_code == 200 and r.json()["state"] == STATE_ACCEPTED, r.text

        after = usage("e-after")
        assert after["accepted"] == ["e-after"], after
        r = b.get("/v1/usage/settlement", params={"wait": 20}, headers=operator.headers)
        assert r.status_code == 200 and r.json()["unsettledEvents"] == 0, r.text
        r = a.get("/v1/me/rewards", headers=alice.headers)
        assert r.status_code == 200, r.text
        for c in (a, b):
            c.close()
    finally:
        server.kill()


def test_forgotten_contribution_is_dropped_by_every_process_cache(pg_url: str) -> None:
    """Two engines = two processes' lookup caches. Process 1 has cached a contribution as
    accepted; process 2 takes it out of the accepted state (forget_contribution, commit);
    process 1's next batch rejects usage of it."""
    db = fresh_pg_database(pg_url)
    engines = [make_engine(db), make_engine(db)]
    try:
        one, two = (make_sessionmaker(e) for e in engines)
        operator = "a" * 64
        with one() as s:
            ensure_key(s, "a" * 64, operator, "operator")
            cid = add_contributions(s, "b" * 64, 1)[0]
            s.add(Model(id="m", name="m", description="", operator_fingerprint=operator))
            s.commit()

        def post(sessions: sessionmaker[Session], eid: str) -> tuple[list[str], list[str]]:
            attribution = AttributionIn(cid, 1, "influence")
            ev = EventIn(eid, "m", datetime.now(UTC), 1000, (attribution,))
            with sessions() as s:
                result, _ = ingest_with_retry(s, operator=operator, events=[ev], share_ppm=700_000)
                return result.accepted, [r.event_id for r in result.rejected]

        assert post(one, "e1") == (["e1"], [])  # process 1 now holds cid as accepted
        with two() as s:
            row = s.scalars(select(Contribution).where(Contribution.id == cid)).one()
            row.state = STATE_REJECTED
            forget_contribution(s, cid)
            s.commit()
        assert post(one, "e2") == ([], ["e2"])
    finally:
        for e in engines:
            e.dispose()


def test_shared_buckets_refill_and_are_shared(pg_url: str) -> None:
    db = fresh_pg_database(pg_url)
    engine = make_engine(db)
    try:
        now = [1000.0]
        first = SharedTokenBuckets(engine, 3, "api", clock=lambda: now[0])
        second = SharedTokenBuckets(engine, 3, "api", clock=lambda: now[0])
        other_budget = SharedTokenBuckets(engine, 3, "upload", clock=lambda: now[0])
        assert [first.take("k"), second.take("k"), first.take("k")] == [0.0, 0.0, 0.0]
        assert second.take("k") == pytest.approx(20.0)  # 3/min: one token every 20 s
        assert other_budget.take("k") == 0.0  # budgets are separate
        assert first.take("other") == 0.0  # keys are separate
        now[0] += 10
        assert first.take("k") == pytest.approx(10.0)
        now[0] += 10
        assert second.take("k") == 0.0
        assert first.take("k") > 0
    finally:
        engine.dispose()
