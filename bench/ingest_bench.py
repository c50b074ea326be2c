"""Usage ingestion throughput and usage time-series latency, SQLite and PostgreSQL.

1. Throughput: batches of 1,000 events with 3 attributions each through
   `registry.ledger.ingest_events` (validation, exact split, ledger, day buckets, one
   transaction per batch) — against a baseline in the same run: the driver's raw `executemany`
   of the very same precomputed rows (events with attributions, ledger, buckets) into the same
   schema, one transaction per batch. ours/baseline shows what validation, splitting and
   aggregation cost on top of the bare inserts. Target: >= 20,000 events/s.
   With --http, also end-to-end through `POST /v1/usage` of a live `contributor-registry serve`.
2. Latency: after `--events` (default 1,000,000) events, the usage time series of one
   contribution attributed in every event (90 days, by model and method, from the buckets),
   against a baseline query that computes the same series by scanning the events.
   Target: < 100 ms.
3. Where the time goes: each run also prints the wall time of the database writes + commit
   alone (rows already planned), which bounds what one writer can reach whatever the Python
   before it costs. `--without-buckets` skips the day-bucket upsert altogether (not a valid
   registry: no series, no summary) to show the most any design that defers or drops bucket
   maintenance could reach on this machine.

PostgreSQL is a throwaway cluster (initdb + pg_ctl on a random port, fsync on, like a real
server). Run: .venv/bin/python bench/ingest_bench.py [--events 1000000] [--batches 30]
[--only sqlite|postgres] [--http] [--writers 2] [--without-buckets]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from app.durable import gc_paused  # noqa: E402
from registry.auth import Principal  # noqa: E402
from registry.bulkdb import BulkDb  # noqa: E402
from registry.db.models import ROLE_CONTRIBUTOR, ROLE_OPERATOR, Key  # noqa: E402
from registry.db.session import make_engine, make_sessionmaker, migrate  # noqa: E402
from registry.db.usage_models import Model  # noqa: E402
from registry.ledger import AttributionIn, EventIn, plan_batch, write_batch  # noqa: E402
from registry.routes.reads import contribution_usage  # noqa: E402
from tests.support.usage_data import add_contributions  # noqa: E402

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
BATCH = 1000
ATTRIBUTIONS = 3
CONTRIBUTIONS = 1000
MODELS = ("bench-a", "bench-b", "bench-c")
METHODS = ("influence", "exact-match", "retrieval")
SHARE = 700_000
OWNER = "b" * 64
OPERATOR = "a" * 64
NOW = datetime.now(UTC)


# ---------------------------------------------------------------------------------- databases


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@contextmanager
def postgres_cluster() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="ingest-bench-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB"
    subprocess.run(
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                     str(root / "log"), "-w", "start"),
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def pg_database(server: str) -> str:
    import psycopg

    name = "b_" + secrets.token_hex(5)
    with psycopg.connect(server.replace("+psycopg", "") + "/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def prepared(db_url: str) -> tuple[Engine, sessionmaker[Session], list[str]]:
    """A migrated registry DB with an operator, three models and accepted contributions."""
    engine = make_engine(db_url)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        s.add(Key(fingerprint=OPERATOR, public_key="0" * 64, role=ROLE_OPERATOR))
        s.add(Key(fingerprint=OWNER, public_key="1" * 64, role=ROLE_CONTRIBUTOR))
        s.flush()
        for m in MODELS:
            s.add(Model(id=m, name=m, description="", operator_fingerprint=OPERATOR, demo=False))
        s.commit()
        cids = add_contributions(s, OWNER, CONTRIBUTIONS, public_key="1" * 64)
    return engine, sessions, cids


# ------------------------------------------------------------------------------------- events


def make_batches(cids: list[str], n_batches: int, seed: int, tag: str) -> list[list[EventIn]]:
    """Events over the last 90 days; cids[0] is attributed in every event (the hot one)."""
    rng = random.Random(seed)
    out = []
    for b in range(n_batches):
        batch = []
        for i in range(BATCH):
            others = rng.sample(cids[1:], ATTRIBUTIONS - 1)
            batch.append(
                EventIn(
                    event_id=f"{tag}-{b}-{i}",
                    model_id=MODELS[i % len(MODELS)],
                    at=NOW - timedelta(seconds=rng.randrange(90 * 86_400)),
                    fee_micro=rng.randrange(100, 10_000),
                    attributions=tuple(
                        AttributionIn(c, rng.randrange(1, 1000) / 1000, METHODS[j])
                        for j, c in enumerate([cids[0], *others])
                    ),
                )
            )
        out.append(batch)
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu(session: Session) -> float:
    """CPU seconds used so far by the PostgreSQL backend serving this session (0 on SQLite,
    whose work is already in our own process time)."""
    if session.get_bind().dialect.name != "postgresql":
        return 0.0
    return process_cpu(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


@dataclass(frozen=True)
class Timing:
    """Where a run's time went: wall, our CPU, the database server's CPU, and the wall time of
    the database writes + commits alone (the part a single SQLite writer cannot overlap)."""

    wall: float
    cpu: float
    server: float
    writes: float


def ingest_ours(
    sessions: sessionmaker[Session], batches: list[list[EventIn]], writers: int = 1
) -> Timing:
    """Ingest the batches exactly as `registry.ledger.ingest_events` + commit does (plan with
    the cyclic GC paused, write, commit), timing the writes + commit of each batch apart.

    With `writers` > 1, that many threads ingest batches at once, each in its own session and
    transaction, as the server does for concurrent POST /v1/usage requests.
    """

    def one(batch: list[EventIn]) -> tuple[float, float]:
        with sessions() as s:
            before = backend_cpu(s)
            with gc_paused():
                db = BulkDb(s)
                result, rows = plan_batch(db, OPERATOR, batch, SHARE)
                t = time.perf_counter()
                write_batch(s, db, rows)
            s.commit()
            writes = time.perf_counter() - t
            used = backend_cpu(s) - before
        assert len(result.accepted) == len(batch), result.rejected[:1]
        return used, writes

    start, cpu = time.perf_counter(), time.process_time()
    if writers == 1:
        parts = [one(batch) for batch in batches]
    else:
        with ThreadPoolExecutor(writers) as pool:
            parts = list(pool.map(one, batches))
    return Timing(
        time.perf_counter() - start,
        time.process_time() - cpu,
        sum(p[0] for p in parts),
        sum(p[1] for p in parts),
    )


# ----------------------------------------------------------------------------------- baseline


def baseline_rows(batch: list[EventIn], owner: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows ingestion writes for a batch, computed before the baseline's timing starts."""
    from app.domain.rewards import contributor_pool, split_largest_remainder
    from registry.usage_rules import weight_to_ppm

    events: list[tuple[Any, ...]] = []
    ledger: list[tuple[Any, ...]] = []
    buckets: dict[tuple[Any, ...], int] = {}
    protocol: dict[str, int] = {}
    for e in batch:
        at = e.at.astimezone(UTC)
        ws = [weight_to_ppm(a.weight) or 0 for a in e.attributions]
        pairs = zip(e.attributions, ws, strict=True)
        attrs = json.dumps([[a.contribution_id, w, a.method] for a, w in pairs])
        events.append((e.event_id, e.model_id, at, e.fee_micro, OPERATOR, False, NOW, attrs))
        pool = contributor_pool(e.fee_micro, SHARE)
        for a, amount in zip(e.attributions, split_largest_remainder(pool, ws), strict=True):
            ledger.append((e.event_id, "contributor", a.contribution_id, owner, e.model_id,
                           a.method, amount, at, False))  # fmt: skip
            key = (a.contribution_id, at.date(), e.model_id, a.method)
            buckets[key] = buckets.get(key, 0) + 1
        protocol[e.model_id] = protocol.get(e.model_id, 0) + e.fee_micro - pool
    for model_id, amount in protocol.items():  # one protocol entry per model and batch
        ledger.append((None, "protocol", None, None, model_id, None, amount, NOW, False))
    return {
        "events": events,
        "ledger": ledger,
        "buckets": [(*k, n, 0, 0) for k, n in buckets.items()],
    }


SQL = {
    "events": "INSERT INTO usage_events (event_id, model_id, at, fee_micro, operator_fingerprint,"
    " demo, received_at, attributions) VALUES ({})",
    "ledger": "INSERT INTO ledger (event_id, kind, contribution_id, owner_fingerprint, model_id,"
    " method, amount_micro, at, demo) VALUES ({})",
    "buckets": "INSERT INTO usage_buckets (contribution_id, bucket_start, model_id, method, events,"
    " share_ppm_sum, reward_micro) VALUES ({}) ON CONFLICT (contribution_id, bucket_start,"
    " model_id, method) DO UPDATE SET events = usage_buckets.events + excluded.events",
}


def ingest_baseline(
    engine: Engine, rows: list[dict[str, list[tuple[Any, ...]]]]
) -> tuple[float, float]:
    """Raw driver executemany of the same rows, one transaction per batch: wall seconds and
    CPU seconds (ours + the server's)."""
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    if sqlite:  # the sqlite3 adapters for datetime/date are deprecated: ISO text, as SQLAlchemy
        rows = [{t: [tuple(_iso(v) for v in r) for r in vs] for t, vs in b.items()} for b in rows]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        server = _raw_backend_cpu(cur) if not sqlite else 0.0
        start, cpu = time.perf_counter(), time.process_time()
        for batch in rows:
            for table in ("events", "ledger", "buckets"):
                values = batch[table]
                n = len(values[0])
                cur.executemany(SQL[table].format(", ".join([mark] * n)), values)
            raw.commit()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if not sqlite:
            server = _raw_backend_cpu(cur) - server
            raw.commit()
        return wall, cpu + server
    finally:
        raw.close()


def _raw_backend_cpu(cur: Any) -> float:
    cur.execute("SELECT pg_backend_pid()")
    return process_cpu(cur.fetchone()[0])


def _iso(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.replace(tzinfo=None).isoformat(" ")
    return v.isoformat() if hasattr(v, "isoformat") else v


# ------------------------------------------------------------------------------------- query


def series_latency(sessions: sessionmaker[Session], cid: str, runs: int = 20) -> float:
    principal = Principal(fingerprint=OWNER, public_key="1" * 64, role=ROLE_CONTRIBUTOR)
    times = []
    for _ in range(runs):
        with sessions() as s:
            t = time.perf_counter()
            r = contribution_usage(s, principal, cid, "day", None, None)
            times.append(time.perf_counter() - t)
    assert r.totals.events > 0
    return statistics.median(times)


def scan_latency(engine: Engine, cid: str, runs: int = 3) -> float:
    """The same series computed from the events themselves (attributions are a JSON column)."""
    if engine.dialect.name == "sqlite":
        sql = text(
            "SELECT e.model_id, a.value ->> 2 AS method, date(e.at) AS day, count(*) "
            "FROM usage_events e, json_each(e.attributions) a WHERE a.value ->> 0 = :c "
            "AND e.at >= :since GROUP BY 1, 2, 3"
        )
    else:
        sql = text(
            "SELECT e.model_id, a ->> 2 AS method, date(e.at) AS day, count(*) "
            "FROM usage_events e, json_array_elements(e.attributions::json) a "
            "WHERE a ->> 0 = :c AND e.at >= :since GROUP BY 1, 2, 3"
        )
    times = []
    for _ in range(runs):
        with engine.connect() as c:
            t = time.perf_counter()
            c.execute(sql, {"c": cid, "since": NOW - timedelta(days=90)}).all()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------- run


def bench_db(label: str, new_url: Callable[[], str], args: argparse.Namespace) -> None:
    engine, sessions, cids = prepared(new_url())
    batches = make_batches(cids, args.batches, seed=1, tag="t")
    ours = ingest_ours(sessions, batches)
    ours_s, ours_cpu, server_cpu = ours.wall, ours.cpu, ours.server
    base_engine, _, base_cids = prepared(new_url())
    rows = [baseline_rows(b, OWNER) for b in make_batches(base_cids, args.batches, 1, "t")]
    base_s, base_cpu = ingest_baseline(base_engine, rows)
    base_engine.dispose()
    n = args.batches * BATCH
    print(
        f"[{label}] ingest {n:,} events x {ATTRIBUTIONS} attributions: "
        f"ours {n / ours_s:,.0f} events/s, raw executemany {n / base_s:,.0f} events/s, "
        f"ours/baseline {base_s / ours_s:.2f}x",
        flush=True,
    )
    # CPU seconds are what an unloaded machine would need: the host is shared, so wall-clock
    # rates depend on the other jobs' load; events per CPU second do much less.
    if engine.dialect.name == "sqlite":
        split = f"{ours_cpu / n * 1e6:.0f} us per event, SQLite in-process"
    else:
        split = (
            f"{ours_cpu / n * 1e6:.0f} us client + {server_cpu / n * 1e6:.0f} us PostgreSQL "
            "backend per event"
        )
    print(
        f"[{label}] per CPU second: ours {n / (ours_cpu + server_cpu):,.0f} events/s ({split}),"
        f" raw executemany {n / base_cpu:,.0f} events/s, ours/baseline"
        f" {base_cpu / (ours_cpu + server_cpu):.2f}x",
        flush=True,
    )
    # The writes + commit alone: one SQLite writer at a time can never ingest faster than this,
    # whatever the Python before it costs.
    print(
        f"[{label}] writes + commit alone: {ours.writes / args.batches * 1000:.1f} ms per batch, "
        f"a ceiling of {n / ours.writes:,.0f} events/s for one writer",
        flush=True,
    )
    if args.writers > 1:
        w_engine, w_sessions, w_cids = prepared(new_url())
        w_batches = make_batches(w_cids, args.batches, seed=1, tag="t")
        w = ingest_ours(w_sessions, w_batches, args.writers)
        w_s, w_cpu, w_server = w.wall, w.cpu, w.server
        w_engine.dispose()
        print(
            f"[{label}] ingest {n:,} events, {args.writers} concurrent writers: "
            f"{n / w_s:,.0f} events/s, {n / (w_cpu + w_server):,.0f} per CPU second",
            flush=True,
        )
    if args.events > n:
        remaining = (args.events - n) // BATCH
        fill = fill_cpu = fill_writes = 0.0
        done = 0
        while done < remaining:
            chunk = min(50, remaining - done)
            more = make_batches(cids, chunk, seed=100 + done, tag=f"m{done}")
            t = ingest_ours(sessions, more)
            wall = t.wall
            fill, fill_cpu = fill + wall, fill_cpu + t.cpu + t.server
            fill_writes += t.writes
            done += chunk
            if done == remaining or done % 200 == 0:
                print(
                    f"[{label}] {n + done * BATCH:,} events: last {chunk * BATCH:,} at "
                    f"{chunk * BATCH / wall:,.0f} events/s, "
                    f"{chunk * BATCH / (t.cpu + t.server):,.0f} per CPU second, writes + commit "
                    f"{t.writes / chunk * 1000:.1f} ms per batch",
                    flush=True,
                )
        print(
            f"[{label}] filled to {args.events:,} events at {remaining * BATCH / fill:,.0f} "
            f"events/s, {remaining * BATCH / fill_cpu:,.0f} per CPU second; writes + commit "
            f"alone {fill_writes / remaining * 1000:.1f} ms per batch (one writer's ceiling "
            f"{remaining * BATCH / fill_writes:,.0f} events/s)",
            flush=True,
        )
    if args.without_buckets:  # no buckets, no series to time
        engine.dispose()
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as c:
            c.execute(text("ANALYZE"))
            c.commit()
    ours_q = series_latency(sessions, cids[0])
    scan_q = scan_latency(engine, cids[0])
    print(
        f"[{label}] 90-day series of a contribution in all {args.events:,} events: "
        f"ours {ours_q * 1000:.1f} ms (median of 20), scan of events {scan_q * 1000:.0f} ms, "
        f"scan/ours {scan_q / ours_q:.0f}x",
        flush=True,
    )
    if args.http:
        http_bench(label, engine.url.render_as_string(hide_password=False), cids, args)
    engine.dispose()


def http_bench(
    label: str, db_url: str, cids: list[str], args: argparse.Namespace, *extra: str
) -> None:
    """End-to-end POST /v1/usage into a live server on the same database (`extra`: more
    `serve` arguments, e.g. --no-settler)."""
    import base64

    import httpx
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.support.registry_server import RegistryProcess

    key = Ed25519PrivateKey.generate()
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    blobs = Path(tempfile.mkdtemp(prefix="ingest-bench-blobs-"))
    server = RegistryProcess(
        db_url, blobs / "b", extra_args=("--operator-key", pub, "--rate-limit", "0", *extra)
    )
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            nonce = http.post("/v1/auth/challenge", json={"publicKey": pub}).json()["nonce"]
            sig = key.sign(b"contributor-desk-auth-v1\n" + nonce.encode())
            token = http.post(
                "/v1/auth/token",
                json={
                    "publicKey": pub,
                    "nonce": nonce,
                    "signature": base64.b64encode(sig).decode(),
                },
            ).json()["token"]
            h = {"Authorization": f"Bearer {token}"}
            for m in MODELS:
                http.post("/v1/models", json={"id": f"h{m}", "name": m}, headers=h)
            bodies = []
            for b, batch in enumerate(make_batches(cids, 2 * args.batches, seed=7, tag="h")):
                bodies.append(
                    {"events": [
                        {"eventId": f"http-{b}-{i}", "modelId": f"h{e.model_id}",
                         "at": e.at.isoformat(), "feeMicro": e.fee_micro,
                         "attributions": [{"contributionId": a.contribution_id,
                                           "weight": a.weight, "method": a.method}
                                          for a in e.attributions]}
                        for i, e in enumerate(batch)
                    ]}
                )  # fmt: skip

            def post(client: httpx.Client, body: dict[str, Any]) -> None:
                r = client.post("/v1/usage", json=body, headers=h)
                assert r.status_code == 200 and len(r.json()["accepted"]) == BATCH, r.text[:300]

            sequential, concurrent = bodies[: args.batches], bodies[args.batches :]
            assert server.proc is not None
            pid = server.proc.pid
            cpu = process_cpu(pid)
            t = time.perf_counter()
            for body in sequential:
                post(http, body)
            took = time.perf_counter() - t
            cpu = process_cpu(pid) - cpu
        n = args.batches * BATCH
        print(
            f"[{label}] HTTP POST /v1/usage end to end: {n / took:,.0f} events/s "
            f"(registry process {cpu / n * 1e6:.0f} us CPU per event)",
            flush=True,
        )
        if args.writers > 1:  # as many operators posting at once, each on its own connection

            def operator(k: int) -> None:
                with httpx.Client(base_url=server.base_url, timeout=60) as client:
                    for body in concurrent[k :: args.writers]:
                        post(client, body)

            t = time.perf_counter()
            with ThreadPoolExecutor(args.writers) as pool:
                list(pool.map(operator, range(args.writers)))
            took = time.perf_counter() - t
            print(
                f"[{label}] HTTP POST /v1/usage, {args.writers} concurrent clients: "
                f"{n / took:,.0f} events/s",
                flush=True,
            )
    finally:
        server.kill()
        shutil.rmtree(blobs, ignore_errors=True)


# --------------------------------------------------------------------- intake and settlement


def mixed_bench(label: str, db_url: str, cids: list[str], args: argparse.Namespace) -> None:
    """Intake over HTTP at a fixed rate (`--rate` events/s, 1,000-event batches) into
    `serve --no-settler` while `contributor-registry settle` runs beside it, for `--mixed`
    seconds. Settlement lag of an event = when the watermark passed it - when its batch was
    answered; sampled every 50 ms from GET /v1/usage/settlement (p50 / p99 / max)."""
    import base64
    import threading

    import httpx
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.support.registry_server import RegistryProcess

    key = Ed25519PrivateKey.generate()
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    blobs = Path(tempfile.mkdtemp(prefix="mixed-bench-blobs-"))
    server = RegistryProcess(
        db_url, blobs / "b",
        extra_args=("--operator-key", pub, "--rate-limit", "0", "--no-settler"),
    )  # fmt: skip
    server.start()
    settler = subprocess.Popen(
        [sys.executable, "-m", "registry.cli", "settle", "--db", db_url, "--poll", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    answered: list[tuple[float, int]] = []  # (time answered, receivedThrough after it)
    settled: list[tuple[float, int]] = []  # (time seen, settledThrough)
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            nonce = http.post("/v1/auth/challenge", json={"publicKey": pub}).json()["nonce"]
            sig = key.sign(b"contributor-desk-auth-v1\n" + nonce.encode())
            token = http.post(
                "/v1/auth/token",
                json={"publicKey": pub, "nonce": nonce,
                      "signature": base64.b64encode(sig).decode()},
            ).json()["token"]  # fmt: skip
            h = {"Authorization": f"Bearer {token}"}
            for m in MODELS:
                http.post("/v1/models", json={"id": f"h{m}", "name": m}, headers=h)
            n_batches = int(args.mixed * args.rate / BATCH)
            bodies = [
                {"events": [
                    {"eventId": f"mix-{b}-{i}", "modelId": f"h{e.model_id}",
                     "at": e.at.isoformat(), "feeMicro": e.fee_micro,
                     "attributions": [{"contributionId": a.contribution_id,
                                       "weight": a.weight, "method": a.method}
                                      for a in e.attributions]}
                    for i, e in enumerate(batch)
                ]}
                for b, batch in enumerate(make_batches(cids, n_batches, seed=3, tag="m"))
            ]  # fmt: skip
            done = threading.Event()

            def watch() -> None:
                with httpx.Client(base_url=server.base_url, timeout=60) as w:
                    while not done.is_set():
                        st = w.get("/v1/usage/settlement", headers=h).json()
                        settled.append((time.perf_counter(), st["settledThrough"]["sequence"]))
                        time.sleep(0.05)

            watcher = threading.Thread(target=watch)
            watcher.start()
            start = time.perf_counter()
            for b, body in enumerate(bodies):
                due = start + b * BATCH / args.rate
                if (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                r = http.post("/v1/usage", json=body, headers=h)
                assert r.status_code == 200, r.text[:200]
                seq = http.get("/v1/usage/settlement", headers=h).json()["receivedThrough"]
                answered.append((time.perf_counter(), seq))
            took = time.perf_counter() - start
            while settled[-1][1] < answered[-1][1]:
                time.sleep(0.05)
            done.set()
            watcher.join()
        lags = []
        for t_answer, seq in answered:
            seen = next(t for t, s in settled if s >= seq)
            lags.append(max(0.0, seen - t_answer))
        lags.sort()
        p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
        print(
            f"[{label}] mixed: {len(bodies) * BATCH / took:,.0f} ev/s offered for {took:.0f} s "
            f"(target {args.rate:,}); settlement lag p50 {p(0.5):.2f} s, p99 {p(0.99):.2f} s, "
            f"max {lags[-1]:.2f} s; load {_load()}",
            flush=True,
        )
    finally:
        settler.kill()
        settler.wait()
        server.kill()
        shutil.rmtree(blobs, ignore_errors=True)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _raw_events(sessions: sessionmaker[Session], batches: list[list[EventIn]]) -> float:
    """Baseline: the driver's bulk insert (executemany on SQLite, COPY on PostgreSQL) of the
    very same usage-log rows intake writes, one transaction per batch; wall seconds."""
    from registry.ledger import EVENT_COLUMNS, EVENTS

    rows_per_batch = []
    with sessions() as s:
        db = BulkDb(s)
        seq = 0
        for batch in batches:
            _, planned = plan_batch(db, OPERATOR, batch, SHARE)
            numbered = []
            for r in planned.events:
                seq += 1
                numbered.append((*r, seq))
            rows_per_batch.append(sorted(numbered))
    start = time.perf_counter()
    for rows in rows_per_batch:
        with sessions() as s:
            db = BulkDb(s)
            if db.dialect == "sqlite":
                cols = ", ".join(EVENT_COLUMNS)
                marks = ", ".join("?" * len(EVENT_COLUMNS))
                cur = db.raw.cursor()
                cur.executemany(f"INSERT INTO usage_events ({cols}) VALUES ({marks})", rows)
                cur.close()
            else:
                db.insert(EVENTS, EVENT_COLUMNS, rows)
            s.commit()
    return time.perf_counter() - start


def settlement_bench(label: str, new_url: Callable[[], str], args: argparse.Namespace) -> None:
    """Alternating rounds on fresh databases: intake (plan + append + commit per batch of
    1,000), its baseline (raw insert of the same rows), then settlement of everything
    (chunks of --chunk events). Prints min / median / max events/s and the load."""
    from registry.settlement import settle_once

    if args.mixed:
        engine, _, cids = prepared(new_url())
        try:
            mixed_bench(label, str(engine.url.render_as_string(False)), cids, args)
        finally:
            engine.dispose()
        return
    n = args.batches
    intake, base, settle, series = [], [], [], []
    for rnd in range(args.rounds):
        order = ("ours", "baseline") if rnd % 2 == 0 else ("baseline", "ours")
        for which in order:
            engine, sessions, cids = prepared(new_url())
            batches = make_batches(cids, n, seed=rnd, tag=f"r{rnd}")
            try:
                if which == "baseline":
                    base.append(n * BATCH / _raw_events(sessions, batches))
                    continue
                t = ingest_ours(sessions, batches)
                intake.append(n * BATCH / t.wall)
                start = time.perf_counter()
                settled = 0
                while True:
                    r = settle_once(sessions, share_ppm=SHARE, limit=args.chunk)
                    if not r.events:
                        break
                    settled += r.events
                settle.append(settled / (time.perf_counter() - start))
                assert settled == n * BATCH
                series.append(series_latency(sessions, cids[0], runs=5) * 1000)
            finally:
                engine.dispose()
        print(f"[{label}] round {rnd + 1}: load {_load()}", flush=True)

    def mmm(xs: list[float]) -> str:
        return f"{min(xs):,.0f} / {statistics.median(xs):,.0f} / {max(xs):,.0f}"

    if args.http:  # intake alone (no settler in the server), then with its in-process settler
        for extra, what in ((("--no-settler",), "intake only"), ((), "settler in-process")):
            engine, _, cids = prepared(new_url())
            try:
                http_bench(f"{label}, {what}", str(engine.url.render_as_string(False)), cids,
                           args, *extra)  # fmt: skip
            finally:
                engine.dispose()
    print(f"[{label}] {n * BATCH:,} events per round, {args.rounds} rounds (min / median / max)")
    print(f"[{label}]   intake (plan + append + commit): {mmm(intake)} ev/s")
    print(f"[{label}]   baseline raw insert, same rows : {mmm(base)} ev/s")
    print(f"[{label}]   settlement (chunks of {args.chunk}): {mmm(settle)} ev/s")
    print(f"[{label}]   90-day series after settlement : {mmm(series)} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batches", type=int, default=30, help="batches timed against the baseline")
    ap.add_argument("--only", choices=["sqlite", "postgres"])
    ap.add_argument("--http", action="store_true", help="also time POST /v1/usage end to end")
    ap.add_argument("--writers", type=int, default=2, help="concurrent writers of the second run")
    ap.add_argument(
        "--without-buckets",
        action="store_true",
        help="upper bound: skip the day-bucket upsert (not a valid registry)",
    )
    ap.add_argument(
        "--settlement",
        action="store_true",
        help="intake vs raw insert, then settlement, in --rounds alternating rounds",
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mixed", type=float, default=0, help="seconds of a mixed run")
    ap.add_argument("--rate", type=int, default=10_000, help="events/s offered in the mixed run")
    ap.add_argument("--chunk", type=int, default=5000, help="events per settlement transaction")
    args = ap.parse_args()
    if args.settlement:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        if args.only in (None, "sqlite"):
            tmp = Path(tempfile.mkdtemp(prefix="settle-bench-"))
            try:
                counter = iter(range(1000))
                settlement_bench(
                    "sqlite", lambda: f"sqlite:///{tmp / f's{next(counter)}.sqlite3'}", args
                )
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if args.only in (None, "postgres") and (PG_BIN / "initdb").exists():
            with postgres_cluster() as server:
                settlement_bench("postgres", lambda: pg_database(server), args)
        return
    if args.without_buckets:
        # Reports every row as written, so ingestion does not take it for a full bucket.
        BulkDb.upsert_add = lambda _db, _t, _c, _k, rows, *_a: len(rows)  # type: ignore[method-assign]
        print("WITHOUT the day-bucket upsert: an upper bound, not a valid registry", flush=True)
    # A terminated bench still stops its PostgreSQL cluster and removes its files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"ingest bench: batches of {BATCH} events x {ATTRIBUTIONS} attributions", flush=True)
    if args.only in (None, "sqlite"):
        tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
        try:
            counter = iter(range(100))
            bench_db("sqlite", lambda: f"sqlite:///{tmp / f'r{next(counter)}.sqlite3'}", args)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.only in (None, "postgres"):
        if not (PG_BIN / "initdb").exists():
            print("[postgres] skipped: PostgreSQL server binaries not installed")
            return
        with postgres_cluster() as server:
            bench_db("postgres", lambda: pg_database(server), args)


if __name__ == "__main__":
    main()
