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
from registry.routes.reads import _usage_window  # noqa: E402
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
            r = _usage_window(s, principal, cid, "day", None, None)
            times.append(time.perf_counter() - t)
    # The route answers with its JSON already encoded (msgspec): the time includes that.
    assert json.loads(bytes(r.body))["totals"]["events"] > 0
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


# ------------------------------------------------- HTTP intake filling the log, mixed, series


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by process `pid` and all its descendants (the serve process and
    its workers; a PostgreSQL postmaster and its backends)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += process_cpu(p)
        except OSError:
            continue
        todo.extend(children.get(p, ()))
    return total


def pg_cpu_by_kind(pg: int, databases: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of a PostgreSQL cluster's processes by kind, from their titles:
    the backends of each database in `databases` ({name: label}), autovacuum workers, the
    checkpointer / WAL writer / background writer, the rest; "exited": children the
    postmaster has reaped (short-lived autovacuum workers, closed backends; /proc cutime)."""
    out: dict[str, float] = {}
    fields = Path(f"/proc/{pg}/stat").read_text().rsplit(")", 1)[1].split()
    out["exited"] = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pg:
            continue
        kind = "other"
        if "autovacuum" in title:
            kind = "autovacuum"
        elif any(w in title for w in ("checkpointer", "walwriter", "background writer")):
            kind = "checkpoint+wal"
        else:
            for name, label in databases.items():
                if f" {name} " in title:
                    kind = label
        try:
            out[kind] = out.get(kind, 0.0) + process_cpu(int(entry))
        except OSError:
            continue
    return out


def postmaster_pid(db_url: str) -> int | None:
    """The postmaster of the bench cluster serving `db_url` (found by its port)."""
    port = db_url.rsplit(":", 1)[1].split("/", 1)[0]
    if not port.isdigit():  # not a PostgreSQL URL with a port (an empty one matched anything)
        return None
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"postgres") and b"-p" in cmd and port.encode() in cmd:
                return int(entry)
    return None


class Operator:
    """A signed-in operator of a live registry with the three bench models registered."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.key = Ed25519PrivateKey.generate()
        self.public_key = (
            self.key.public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            .hex()
        )
        self.headers: dict[str, str] = {}

    def sign_in(self, base_url: str) -> None:
        import base64

        import httpx

        with httpx.Client(base_url=base_url, timeout=60) as http:
            nonce = http.post("/v1/auth/challenge", json={"publicKey": self.public_key})
            sig = self.key.sign(b"contributor-desk-auth-v1\n" + nonce.json()["nonce"].encode())
            token = http.post(
                "/v1/auth/token",
                json={"publicKey": self.public_key, "nonce": nonce.json()["nonce"],
                      "signature": base64.b64encode(sig).decode()},
            ).json()["token"]  # fmt: skip
            self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for m in MODELS:
                r = http.post("/v1/models", json={"id": f"h{m}", "name": m}, headers=self.headers)
                assert r.status_code in (200, 201), r.text


ID_MARK = b"@@"  # replaced by the batch's tag in each event id of a body template


def body_templates(cids: list[str], n: int = 8) -> tuple[list[bytes], list[list[EventIn]]]:
    """`n` different 1,000-event batches as JSON body templates (event ids "@@-i"; a batch is
    a template with @@ replaced, so the client spends microseconds per body, not a JSON
    encode), and the same batches as EventIn for the raw baseline."""
    batches = make_batches(cids, n, seed=11, tag="@@")
    bodies = [
        json.dumps({"events": [
            {"eventId": e.event_id.rsplit("-", 2)[0] + "-" + e.event_id.rsplit("-", 1)[1],
             "modelId": f"h{e.model_id}", "at": e.at.isoformat(), "feeMicro": e.fee_micro,
             "attributions": [{"contributionId": a.contribution_id, "weight": a.weight,
                               "method": a.method} for a in e.attributions]}
            for e in batch
        ]}, separators=(",", ":")).encode()
        for batch in batches
    ]  # fmt: skip
    return bodies, batches


class Poster:
    """`clients` threads, each on its own keep-alive connection, posting body templates
    (batch b = template b % n with @@ -> "<tag>b") and checking that every event was accepted."""

    def __init__(self, base_url: str, headers: dict[str, str], bodies: list[bytes]) -> None:
        host, port = base_url.split("//", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.headers = headers
        self.bodies = bodies

    def connect(self) -> Any:
        import http.client

        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def post(self, conn: Any, tag: str, b: int) -> None:
        body = self.bodies[b % len(self.bodies)].replace(ID_MARK, f"{tag}{b}".encode())
        conn.request("POST", "/v1/usage", body=body, headers=self.headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or not data.endswith(b'"duplicates":[],"rejected":[]}'):
            raise RuntimeError(f"batch {tag}{b}: {resp.status} {data[-300:]!r}")

    def run(self, tag: str, first: int, n: int, clients: int) -> float:
        """Post batches first .. first+n-1; wall seconds."""
        import threading

        lock = threading.Lock()
        todo = iter(range(first, first + n))

        def client() -> None:
            conn = self.connect()
            try:
                while True:
                    with lock:
                        b = next(todo, None)
                    if b is None:
                        return
                    self.post(conn, tag, b)
            finally:
                conn.close()

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for f in [pool.submit(client) for _ in range(clients)]:
                f.result()
        return time.perf_counter() - start


def template_rows(
    sessions: sessionmaker[Session], templates: list[list[EventIn]]
) -> list[list[tuple[Any, ...]]]:
    """The usage-log rows intake writes for each template (planned once; ids substituted per
    batch by `raw_insert`)."""
    with sessions() as s:
        return [plan_batch(BulkDb(s), OPERATOR, t, SHARE, assume_new=True)[1].events
                for t in templates]  # fmt: skip


def raw_insert(
    sessions: sessionmaker[Session], rows: list[list[tuple[Any, ...]]], tag: str, first: int,
    n: int, seq: int,
) -> float:  # fmt: skip
    """Baseline: the driver's bulk insert (executemany on SQLite, COPY on PostgreSQL) of the
    very rows intake writes for batches first .. first+n-1, one transaction per batch, as
    many batches as intake; wall seconds (the per-batch id substitution is outside the clock)."""
    from registry.ledger import EVENT_COLUMNS, EVENTS

    took = 0.0
    for b in range(first, first + n):
        batch = []
        for r in rows[b % len(rows)]:
            seq += 1
            batch.append((r[0].replace("@@", f"{tag}{b}"), *r[1:], seq))
        batch.sort()
        start = time.perf_counter()
        with sessions() as s:
            db = BulkDb(s)
            if db.dialect == "sqlite":
                cols = ", ".join(EVENT_COLUMNS)
                marks = ", ".join("?" * len(EVENT_COLUMNS))
                cur = db.raw.cursor()
                cur.executemany(f"INSERT INTO usage_events ({cols}) VALUES ({marks})", batch)
                cur.close()
            else:
                db.insert(EVENTS, EVENT_COLUMNS, batch)
            s.commit()
        took += time.perf_counter() - start
    return took


@contextmanager
def live_registry(db_url: str, *extra: str) -> Iterator[tuple[Any, Operator]]:
    """`contributor-registry serve` on `db_url` (`extra`: more serve arguments) with a signed-in
    operator; rate limits on (a high budget: the per-request check is part of the cost)."""
    from tests.support.registry_server import RegistryProcess

    op = Operator()
    blobs = Path(tempfile.mkdtemp(prefix="ingest-bench-blobs-"))
    server = RegistryProcess(
        db_url, blobs / "b",
        extra_args=("--operator-key", op.public_key, "--rate-limit", "1000000", *extra),
    )  # fmt: skip
    server.start()
    try:
        op.sign_in(server.base_url)
        yield server, op
    finally:
        server.kill(signal.SIGTERM)
        shutil.rmtree(blobs, ignore_errors=True)


def settle_all(sessions: sessionmaker[Session], chunk: int) -> tuple[int, float]:
    """Settle the whole log as the registry's settler does (pipelined on PostgreSQL)."""
    from registry.settlement import settle_pending

    start = time.perf_counter()
    settled = settle_pending(sessions, share_ppm=SHARE, limit=chunk)
    return settled, time.perf_counter() - start


# ------------------------------------------------------------- settlement CPU, serial vs pipelined


def _settle_variant(
    which: str, sessions: sessionmaker[Session], chunk: int, pg: int | None
) -> tuple[int, float, float, float]:
    """Settle the whole log one way; (events, wall s, settler CPU s, database CPU s).
    "floor": every chunk computed first (untimed), then only the settling transactions timed
    (lock, owner check, bucket upsert, ledger COPY, log, watermark, commit): the write path
    without the split. "pipe-5ms": pipelined with the interpreter's own GIL switch interval
    (5 ms) while the planner runs, instead of the settler's short one."""
    from registry import settlement
    from registry.settlement import plan_next, settle_chunk, settle_pending

    plans, after = [], 0
    if which == "floor":
        while (p := plan_next(sessions, after, share_ppm=SHARE, limit=chunk)) is not None:
            plans.append(p)
            after = p.seq_to
    b0, c0, start = (tree_cpu(pg) if pg else 0.0), time.process_time(), time.perf_counter()
    if which != "floor":
        short = settlement.PLANNING_SWITCH_INTERVAL_S
        if which == "pipe-5ms":
            settlement.PLANNING_SWITCH_INTERVAL_S = None
        try:
            n = settle_pending(sessions, share_ppm=SHARE, limit=chunk, pipelined=which != "serial")
        finally:
            settlement.PLANNING_SWITCH_INTERVAL_S = short
    else:
        n = 0
        for p in plans:
            with sessions() as s, gc_paused():
                r = settle_chunk(s, share_ppm=SHARE, limit=chunk, planned=p)
                s.commit()
                n += r.events
    wall, cpu = time.perf_counter() - start, time.process_time() - c0
    return n, wall, cpu, (tree_cpu(pg) if pg else 0.0) - b0


def settle_cpu_bench(label: str, new_url: Callable[[], str], args: argparse.Namespace) -> None:
    """`--settle-cpu N`: per round, four fresh databases with the same N events in the usage
    log (raw insert of intake's rows), settled serially (read, split, write, commit per chunk),
    pipelined (the next chunk split while one is written; the registry's settler on
    PostgreSQL), pipelined with the default 5 ms GIL switch interval ("pipe-5ms") and as the
    floor (the writes alone, chunks computed beforehand), in rotating order. Per run: ev/s,
    the settler process's CPU per event (both threads) and, on PostgreSQL, the cluster's (all
    its processes: the backends, WAL writer, autovacuum)."""
    n_batches = max(1, args.settle_cpu // BATCH)
    variants = ("serial", "pipelined", "floor", "pipe-5ms")
    got: dict[str, list[tuple[float, float, float]]] = {v: [] for v in variants}
    for rnd in range(args.rounds):
        order = variants[rnd % 4 :] + variants[: rnd % 4]
        for which in order:
            engine, sessions, cids = prepared(new_url())
            try:
                _raw_events(sessions, make_batches(cids, n_batches, seed=rnd, tag=f"c{rnd}"))
                with sessions() as s:
                    if engine.dialect.name == "postgresql":
                        s.execute(text("ANALYZE"))
                    s.commit()
                pg = (
                    postmaster_pid(engine.url.render_as_string(False))
                    if engine.dialect.name == "postgresql"
                    else None  # SQLite's work is in the settler's own process CPU
                )
                n, wall, cpu, db_cpu = _settle_variant(which, sessions, args.chunk, pg)
                assert n == n_batches * BATCH, n
                got[which].append((n / wall, 1e6 * cpu / n, 1e6 * db_cpu / n))
                print(
                    f"[{label}] round {rnd + 1} {which:9}: {n / wall:8,.0f} ev/s, settler "
                    f"{1e6 * cpu / n:5.1f} us CPU/event, database {1e6 * db_cpu / n:5.1f}"
                    f" us/event; load {_load()}",
                    flush=True,
                )
            finally:
                engine.dispose()
    print(f"[{label}] {n_batches * BATCH:,} events, chunks of {args.chunk}, {args.rounds} rounds")
    print(f"[{label}]   {'':9}  ev/s min / median / max      settler us/ev   database us/ev")
    for which in variants:
        rates, ours, db = zip(*got[which], strict=True)
        print(
            f"[{label}]   {which:9}  {min(rates):,.0f} / {statistics.median(rates):,.0f} / "
            f"{max(rates):,.0f}      {statistics.median(ours):5.1f}           "
            f"{statistics.median(db):5.1f}",
            flush=True,
        )


def http_fill_bench(
    label: str, new_url: Callable[[], str], args: argparse.Namespace, workers: int, series: bool
) -> None:
    """Fill an empty usage log to `--fill` events through `POST /v1/usage` (2 clients by
    default, `serve --no-settler`: intake alone), in `--rounds` segments; each segment is
    followed (or, every other round, preceded) by the raw insert of the same rows into a
    second database filled alongside. Then (`series`) settle everything and time the 90-day
    usage series of the contribution attributed in every event."""
    http_url, base_url = new_url(), new_url()
    engine, sessions, cids = prepared(http_url)
    b_engine, b_sessions, _ = prepared(base_url)
    bodies, templates = body_templates(cids)
    rows = template_rows(sessions, templates)  # the HTTP database names these contributions
    per_round = args.fill // BATCH // args.rounds
    extra = ("--no-settler",) + (("--workers", str(workers)) if workers > 1 else ())
    what = f"{label}, {workers} worker{'s' if workers > 1 else ''}"
    pg = postmaster_pid(http_url) if http_url.startswith("postgresql") else None
    dbnames = {http_url.rsplit("/", 1)[1]: "http-db", base_url.rsplit("/", 1)[1]: "raw-db"}
    ours: list[float] = []
    base: list[float] = []
    took = 0.0
    srv = cli = dbs = 0.0
    try:
        with live_registry(http_url, *extra) as (server, op):
            poster = Poster(server.base_url, op.headers, bodies)
            poster.run("w", 0, 2, args.writers)  # warm-up: connections, caches
            assert server.proc is not None
            for rnd in range(args.rounds):
                first = rnd * per_round
                order = ("ours", "raw") if rnd % 2 == 0 else ("raw", "ours")
                for which in order:
                    if which == "raw":
                        t = raw_insert(b_sessions, rows, "f", first, per_round, first * BATCH)
                        base.append(per_round * BATCH / t)
                        continue
                    cpu0 = (tree_cpu(server.proc.pid), time.process_time(),
                            tree_cpu(pg) if pg else 0.0)  # fmt: skip
                    kinds0 = pg_cpu_by_kind(pg, dbnames) if pg else {}
                    t = took = poster.run("f", first, per_round, args.writers)
                    cpu1 = (tree_cpu(server.proc.pid), time.process_time(),
                            tree_cpu(pg) if pg else 0.0)  # fmt: skip
                    kinds1 = pg_cpu_by_kind(pg, dbnames) if pg else {}
                    ours.append(per_round * BATCH / t)
                    srv, cli, dbs = (b - a for a, b in zip(cpu0, cpu1, strict=True))
                if pg:
                    with engine.connect() as c:
                        vac = c.execute(text(
                            "SELECT coalesce(sum(autovacuum_count), 0), "
                            "coalesce(sum(autoanalyze_count), 0) FROM pg_stat_user_tables"
                        )).one()  # fmt: skip
                        ckpt = c.execute(text(
                            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
                        )).scalar_one()  # fmt: skip
                    split = ", ".join(
                        f"{k} {(kinds1.get(k, 0.0) - kinds0.get(k, 0.0)) / took:.2f}"
                        for k in sorted(set(kinds0) | set(kinds1))
                    )
                    print(
                        f"[{what}] round {rnd + 1}: postgres cores by process over the HTTP "
                        f"segment: {split}; autovacuums/autoanalyzes so far in the HTTP "
                        f"database {vac[0]}/{vac[1]}; checkpoints so far (cluster) {ckpt}",
                        flush=True,
                    )
                print(
                    f"[{what}] round {rnd + 1}: log at {(first + per_round) * BATCH:,} events; "
                    f"HTTP {ours[-1]:,.0f} ev/s, raw {base[-1]:,.0f} ev/s; CPU over the HTTP "
                    f"segment ({took:.1f} s): registry {srv / took:.2f} cores "
                    f"({srv / per_round / BATCH * 1e6:.0f} us/event), postgres "
                    f"{dbs / took:.2f}, bench client {cli / took:.2f}; load {_load()}",
                    flush=True,
                )
        total = args.rounds * per_round * BATCH
        print(
            f"[{what}] HTTP POST /v1/usage, {args.writers} clients, filling 0 -> {total:,} "
            f"events in {args.rounds} rounds (min / median / max): "
            f"{min(ours):,.0f} / {statistics.median(ours):,.0f} / {max(ours):,.0f} ev/s; "
            f"raw {'executemany' if pg is None else 'COPY'} of the same rows "
            f"{min(base):,.0f} / {statistics.median(base):,.0f} / {max(base):,.0f} ev/s",
            flush=True,
        )
        if series:
            n, took = settle_all(sessions, args.chunk)
            assert n == total + 2 * BATCH, n
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.execute(text("VACUUM ANALYZE"))
            with sessions() as s:
                buckets = s.execute(text("SELECT count(*) FROM usage_buckets")).scalar_one()
            hot = series_latency(sessions, cids[0], runs=20) * 1000
            one = series_latency(sessions, cids[1], runs=20) * 1000
            print(
                f"[{what}] settled {n:,} events in {took:.0f} s ({n / took:,.0f} ev/s, chunks "
                f"of {args.chunk}; {buckets:,} day buckets); 90-day usage series (median of "
                f"20): the contribution in every event {hot:.1f} ms, a typical one "
                f"{one:.1f} ms; load {_load()}",
                flush=True,
            )
    finally:
        engine.dispose()
        b_engine.dispose()


def mixed_bench(label: str, db_url: str, cids: list[str], args: argparse.Namespace) -> None:
    """Intake over HTTP at a fixed rate (`--rate` events/s in 1,000-event batches, spread over
    `--writers` paced clients, each on one keep-alive connection, pre-encoded bodies) for
    `--mixed` seconds (batches not sent by then are not sent) while the registry's own settler
    runs (`--mixed-serve`: the serve arguments; by default the serve process's settler:
    in-process on SQLite, the supervisor's with --workers 2 on PostgreSQL).

    Settlement lag of a batch = when the watermark passed it - when its answer arrived. A
    watcher samples (receivedThrough, settledThrough) every 50 ms from GET
    /v1/usage/settlement; a batch's events are at or below the receivedThrough of the first
    sample taken after its answer (conservative: with 2 clients that may include the other
    client's batch), and the watermark passed them at the first sample whose settledThrough
    reaches that (p50 / p99 / max)."""
    import threading

    import httpx

    extra = tuple(args.mixed_serve.split()) if args.mixed_serve else (
        ("--workers", "2") if db_url.startswith("postgresql") else ()
    )  # fmt: skip
    answered: list[float] = []  # times answered
    samples: list[tuple[float, int, int]] = []  # (time asked, receivedThrough, settledThrough)
    bodies, _ = body_templates(cids)
    clients = max(1, args.writers)
    with live_registry(db_url, *extra) as (server, op):
        poster = Poster(server.base_url, op.headers, bodies)
        n_batches = int(args.mixed * args.rate / BATCH)
        done = threading.Event()
        lock = threading.Lock()
        late = [0]

        def watch() -> None:
            with httpx.Client(base_url=server.base_url, timeout=60) as w:
                while not done.is_set():
                    t = time.perf_counter()
                    st = w.get("/v1/usage/settlement", headers=op.headers).json()
                    samples.append((t, st["receivedThrough"], st["settledThrough"]["sequence"]))
                    time.sleep(0.05)

        def client(k: int) -> None:
            conn = poster.connect()
            try:
                for b in range(k, n_batches, clients):
                    if time.perf_counter() > start + args.mixed:
                        return  # the offer lasts --mixed seconds; batches not sent by then
                    due = start + b * BATCH / args.rate
                    if (wait := due - time.perf_counter()) > 0:
                        time.sleep(wait)
                    else:
                        with lock:
                            late[0] += 1
                    poster.post(conn, "m", b)
                    with lock:
                        answered.append(time.perf_counter())
            finally:
                conn.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert server.proc is not None
        pg = postmaster_pid(db_url) if db_url.startswith("postgresql") else None
        cpu0 = (tree_cpu(server.proc.pid), tree_cpu(pg) if pg else 0.0)
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for f in [pool.submit(client, k) for k in range(clients)]:
                f.result()
        took = time.perf_counter() - start
        cpu1 = (tree_cpu(server.proc.pid), tree_cpu(pg) if pg else 0.0)
        last = time.perf_counter()
        while not samples or samples[-1][0] < last or samples[-1][2] < samples[-1][1]:
            time.sleep(0.05)
        done.set()
        watcher.join()
    sent = len(answered)
    lags = []
    for t_answer in answered:
        seq = next(r for t, r, _ in samples if t >= t_answer)
        seen = next(t for t, _, s in samples if s >= seq)
        lags.append(max(0.0, seen - t_answer))
    lags.sort()
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
    print(
        f"[{label}, serve {' '.join(extra) or '(settler in-process)'}] mixed, {clients} "
        f"clients: {sent * BATCH / took:,.0f} ev/s reached of {args.rate:,} offered, for "
        f"{took:.0f} s ({sent} of {n_batches} batches sent, {late[0]} of them late); "
        f"settlement lag p50 "
        f"{p(0.5):.2f} s, p99 {p(0.99):.2f} s, max {lags[-1]:.2f} s; load {_load()}",
        flush=True,
    )
    # One serve process on SQLite: intake and the settler share its interpreter (one GIL), so
    # near 1 core here (SQLite's own work runs outside the GIL) means the process is the limit.
    reg, dbs = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    print(
        f"[{label}] mixed, CPU while offered ({took:.0f} s): registry {reg / took:.2f} cores "
        f"({1e6 * reg / max(1, sent * BATCH):.0f} us per event taken in, intake and settlement)"
        + (f", postgres {dbs / took:.2f} cores" if pg else "")
        + f"; load {_load()}",
        flush=True,
    )


def series_bench(label: str, db_url: str, args: argparse.Namespace) -> None:
    """The 90-day usage series over `--series` settled events, the day buckets filled by bulk
    insert: the buckets the settler would write for that many distinct events (1,000-event
    batches as make_batches draws them: 3 models, 3 attributions with the hot contribution in
    every event, days over 90), aggregated here and inserted in one transaction (settling them
    for real takes minutes; the read only sees the buckets)."""
    from registry.db.usage_models import UsageBucket

    engine, sessions, cids = prepared(db_url)
    try:
        rng = random.Random(5)
        days = [(NOW - timedelta(days=d)).date() for d in range(90)]
        agg: dict[tuple[str, Any, str, str], list[int]] = {}
        others = cids[1:]
        for n in range(args.series):
            model = MODELS[n % 3]
            day = days[rng.randrange(90)]
            fee = rng.randrange(100, 10_000)
            for j, cid in enumerate((cids[0], *rng.sample(others, 2))):
                row = agg.setdefault((cid, day, model, METHODS[j]), [0, 0, 0])
                row[0] += 1
                row[1] += 333_333
                row[2] += fee * 7 // 30
        rows = [(c, d, m, me, *v) for (c, d, m, me), v in agg.items()]
        start = time.perf_counter()
        with sessions() as s:
            db = BulkDb(s)
            table = UsageBucket.__table__
            cols = ("contribution_id", "bucket_start", "model_id", "method", "events",
                    "share_ppm_sum", "reward_micro")  # fmt: skip
            if db.dialect == "sqlite":
                rows = [(c, d.isoformat(), *rest) for c, d, *rest in rows]
            db.insert(table, cols, rows)  # type: ignore[arg-type]
            s.commit()
        fill = time.perf_counter() - start
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE"))
        hot = series_latency(sessions, cids[0], runs=20) * 1000
        one = series_latency(sessions, cids[1], runs=20) * 1000
        print(
            f"[{label}] 90-day usage series over {args.series:,} settled events "
            f"({len(rows):,} day buckets, bulk-inserted in {fill:.1f} s), median of 20: the "
            f"contribution in every event {hot:.1f} ms, a typical one {one:.1f} ms; "
            f"load {_load()}",
            flush=True,
        )
    finally:
        engine.dispose()


def workers_ab_bench(server_url: str, args: argparse.Namespace) -> None:
    """PostgreSQL: `serve --workers 1` against `serve --workers 2` against the raw COPY of the
    same rows, each filling its own database to `--fill` events in `--rounds` segments, the
    three in rotating order within each round (both servers run throughout: the idle one
    costs nothing), so every contender meets the same load."""
    urls = {name: pg_database(server_url) for name in ("1 worker", "2 workers", "raw COPY")}
    prep = {name: prepared(url) for name, url in urls.items()}
    _, sessions, cids = prep["1 worker"]
    bodies, templates = body_templates(cids)
    from typing import cast

    from sqlalchemy import Table, delete, insert, select

    from registry.db.models import Contribution

    table = cast(Table, Contribution.__table__)
    with sessions() as a, prep["2 workers"][1]() as b:  # the same contribution ids in both
        copied = [dict(r._mapping) for r in a.execute(select(table))]
        b.execute(delete(table))
        b.execute(insert(table), copied)
        b.commit()
    rows = template_rows(sessions, templates)
    per_round = args.fill // BATCH // args.rounds
    rates: dict[str, list[float]] = {name: [] for name in urls}
    with (
        live_registry(urls["1 worker"], "--no-settler") as (one, op1),
        live_registry(urls["2 workers"], "--no-settler", "--workers", "2") as (two, op2),
    ):
        posters = {
            "1 worker": Poster(one.base_url, op1.headers, bodies),
            "2 workers": Poster(two.base_url, op2.headers, bodies),
        }
        for p in posters.values():
            p.run("w", 0, 2, args.writers)
        names = list(urls)
        for rnd in range(args.rounds):
            first = rnd * per_round
            order = names[rnd % 3 :] + names[: rnd % 3]
            for name in order:
                if name == "raw COPY":
                    t = raw_insert(prep[name][1], rows, "f", first, per_round, first * BATCH)
                else:
                    t = posters[name].run("f", first, per_round, args.writers)
                rates[name].append(per_round * BATCH / t)
            print(
                f"[postgres A/B] round {rnd + 1} ({' > '.join(order)}), logs at "
                f"{(first + per_round) * BATCH:,} events: "
                + ", ".join(f"{n} {rates[n][-1]:,.0f} ev/s" for n in names)
                + f"; load {_load()}",
                flush=True,
            )
    for name in names:
        v = rates[name]
        print(
            f"[postgres A/B] {name}: {min(v):,.0f} / {statistics.median(v):,.0f} / "
            f"{max(v):,.0f} ev/s (min / median / max of {args.rounds} rounds)",
            flush=True,
        )
    for _, (engine, _, _) in prep.items():
        engine.dispose()


def http_main(args: argparse.Namespace) -> None:
    """--fill / --mixed: the HTTP rows (SQLite one process; PostgreSQL 1 and 2 workers);
    --series: the usage series over that many settled events."""
    if args.series:
        if args.only in (None, "sqlite"):
            tmp = Path(tempfile.mkdtemp(prefix="series-bench-"))
            try:
                series_bench("sqlite", f"sqlite:///{tmp / 's.sqlite3'}", args)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if args.only in (None, "postgres") and (PG_BIN / "initdb").exists():
            with postgres_cluster() as server:
                series_bench("postgres", pg_database(server), args)
    if args.ab:
        with postgres_cluster() as server:
            workers_ab_bench(server, args)
        return
    if args.fill:
        if args.only in (None, "sqlite"):
            tmp = Path(tempfile.mkdtemp(prefix="fill-bench-"))
            try:
                counter = iter(range(1000))
                http_fill_bench(
                    "sqlite", lambda: f"sqlite:///{tmp / f'f{next(counter)}.sqlite3'}", args,
                    1, series=True,
                )  # fmt: skip
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if args.only in (None, "postgres") and (PG_BIN / "initdb").exists():
            with postgres_cluster() as server:
                for workers in (1, 2):
                    http_fill_bench(
                        "postgres", lambda: pg_database(server), args, workers,
                        series=workers == 2,
                    )  # fmt: skip
    if args.mixed:
        if args.only in (None, "sqlite"):
            tmp = Path(tempfile.mkdtemp(prefix="mixed-bench-"))
            try:
                engine, _, cids = prepared(f"sqlite:///{tmp / 'm.sqlite3'}")
                mixed_bench("sqlite", str(engine.url), cids, args)
                engine.dispose()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if args.only in (None, "postgres") and (PG_BIN / "initdb").exists():
            with postgres_cluster() as server:
                engine, _, cids = prepared(pg_database(server))
                mixed_bench("postgres", engine.url.render_as_string(False), cids, args)
                engine.dispose()


def evidence_bench(label: str, new_url: Callable[[], str], args: argparse.Namespace) -> None:
    """Intake (plan + append + commit) of the same events without and with evidence on their
    exact-match and retrieval attributions (file of the contribution, span, span digest), in
    alternating rounds on fresh databases whose contributions have 20 files each. A first
    batch of each run is not timed: it fills the intake cache (contributions and their files,
    as a running server has them), and the time of that cold load is printed apart."""
    import hashlib

    from registry.db.models import ContributionFile

    def with_files(url: str) -> tuple[Engine, sessionmaker[Session], list[str]]:
        engine, sessions, cids = prepared(url)
        with sessions() as s:
            s.add_all(
                ContributionFile(contribution_id=c, path=f"f{k}", size=4096 + k,
                                 sha256=hashlib.sha256(f"{c}/{k}".encode()).hexdigest())
                for c in cids for k in range(20)
            )  # fmt: skip
            s.commit()
        return engine, sessions, cids

    def evidenced(batch: list[EventIn]) -> list[EventIn]:
        out = []
        for e in batch:
            attrs = []
            for k, a in enumerate(e.attributions):
                sha = hashlib.sha256(f"{a.contribution_id}/{k}".encode()).hexdigest()
                ev = {"fileSha256": sha, "offset": 64 * k, "length": 96, "spanSha256": sha}
                evidence = None if a.method == "influence" else ev
                attrs.append(AttributionIn(a.contribution_id, a.weight, a.method, evidence))
            out.append(EventIn(e.event_id, e.model_id, e.at, e.fee_micro, tuple(attrs)))
        return out

    rates: dict[str, list[float]] = {"without": [], "with": []}
    cold: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}  # per CPU second (ours + server)
    for rnd in range(args.rounds):
        order = ("without", "with") if rnd % 2 == 0 else ("with", "without")
        for which in order:
            engine, sessions, cids = with_files(new_url())
            batches = make_batches(cids, args.batches + 1, seed=rnd, tag=f"r{rnd}")
            if which == "with":
                batches = [evidenced(b) for b in batches]
            try:
                cold[which].append(ingest_ours(sessions, batches[:1]).wall * 1000)
                t = ingest_ours(sessions, batches[1:])
                rates[which].append(args.batches * BATCH / t.wall)
                cpu[which].append(args.batches * BATCH / (t.cpu + t.server))
            finally:
                engine.dispose()
    mid = {k: statistics.median(v) for k, v in rates.items()}
    per_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    for k, v in rates.items():
        print(f"[{label}] intake {k} evidence: {min(v):,.0f} / {mid[k]:,.0f} / {max(v):,.0f} ev/s"
              f", {per_cpu[k]:,.0f} ev per CPU s"
              f" (first batch, cold cache: {statistics.median(cold[k]):,.0f} ms)")  # fmt: skip
    ratio, ratio_cpu = mid["with"] / mid["without"], per_cpu["with"] / per_cpu["without"]
    print(f"[{label}] with/without (medians): {ratio:.2f} wall, {ratio_cpu:.2f} CPU")
    print(f"[{label}] load average {_load()}", flush=True)


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
    ap.add_argument(
        "--fill",
        type=int,
        default=0,
        help="HTTP intake filling an empty log to this many events, --rounds segments against "
        "the raw insert; then settlement and the series (SQLite; PostgreSQL 1 and 2 workers)",
    )
    ap.add_argument(
        "--ab",
        action="store_true",
        help="with --fill: PostgreSQL serve --workers 1 vs 2 vs raw COPY, alternating rounds",
    )
    ap.add_argument(
        "--series", type=int, default=0, help="usage series over this many settled events"
    )
    ap.add_argument(
        "--mixed-serve", default=None, help="serve arguments of the mixed run (default: see doc)"
    )
    ap.add_argument(
        "--evidence", action="store_true", help="in-process intake without vs with evidence"
    )
    ap.add_argument(
        "--settle-cpu",
        type=int,
        default=0,
        help="settlement of this many events: serial vs pipelined vs the writes alone",
    )
    args = ap.parse_args()
    if args.settle_cpu:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        if args.only in (None, "sqlite"):
            tmp = Path(tempfile.mkdtemp(prefix="settle-cpu-"))
            try:
                counter = iter(range(1000))
                settle_cpu_bench(
                    "sqlite", lambda: f"sqlite:///{tmp / f'c{next(counter)}.sqlite3'}", args
                )
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if args.only in (None, "postgres") and (PG_BIN / "initdb").exists():
            with postgres_cluster() as server:
                settle_cpu_bench("postgres", lambda: pg_database(server), args)
        return
    if args.evidence:
        tmp = Path(tempfile.mkdtemp(prefix="evidence-bench-"))
        try:
            counter = iter(range(1000))
            evidence_bench("sqlite", lambda: f"sqlite:///{tmp / f'e{next(counter)}.sqlite3'}", args)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if args.only != "sqlite" and (PG_BIN / "initdb").exists():
            with postgres_cluster() as server:
                evidence_bench("postgres", lambda: pg_database(server), args)
        return
    if args.fill or args.series or (args.mixed and not args.settlement):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        http_main(args)
        return
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
