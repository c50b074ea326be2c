"""Settlement with and without the transparency log, its floor, and settlement while filling.

The workload is ingest_bench's: batches of 1,000 events, 3 attributions each (one hot
contribution in every event, two of 1,000 others), 3 models x 3 methods, spread over 90 days,
ingested in-process (registry.ledger plan + write, untimed). Then the whole usage log is
settled (`registry.settlement.settle_once`, chunks of --chunk events), timed.

1. A/B (--events per round, --rounds rounds, contenders alternating, a fresh database each):
     without  `translog.log_entries` / `log_ledger` replaced by no-ops (the ledger alone)
     with     the real log: a leaf per ledger entry, its hash tiles and entry bundle, a
              signed checkpoint, all in the settlement's transaction
     floor    the same ledger and bucket rows the "with" round wrote, inserted raw (multi-row
              VALUES on SQLite, binary COPY on PostgreSQL; buckets plain inserts, no upsert),
              one transaction per chunk: what the database alone costs
   Printed: min / median / max events/s (wall) and CPU µs per event of this process (plus the
   PostgreSQL backend's), the log's share of settlement wall and CPU time per round (with
   vs without of the same round; target <= 10 %), the log's CPU per event and per leaf,
   the 1-minute load average over the rounds.
2. Steps (--steps): each step of the log append alone over one settlement chunk's real rows,
   CPU µs per leaf (rendering, leaf hashes, hash tiles, bundle framing) next to the bare
   SHA-256 work: the log's floor whatever the storage.
3. Fill (--fill N): ingest and settle in steps of --step events up to N events in one
   database; settlement events/s of each step (so the rate at 100k, 200k, ... 1M stored).
4. Ingestion (--ingestion): the whole ingestion path of the same events, timed: intake (the
   registry's own intake path of POST /v1/usage without HTTP: `plan_batch` + `write_batch` +
   commit per batch of 1,000, as `ledger.ingest_events` does) then settlement of them,
   without and with the log (contenders alternating, a fresh database each, the same events
   in both). Printed per contender: wall and CPU (this process, plus the PostgreSQL cluster's)
   per event of intake, of settlement and of both; the log's share of settlement alone and of
   intake + settlement per round (min / median / max), and the load average. Intake appends
   no leaf (the log is appended by the settler), so its with/without difference is noise.
   With --http, intake goes through `POST /v1/usage` of a `serve --no-settler` process (one
   client, keep-alive; its CPU is the serve process's plus PostgreSQL's), then this process
   settles as above.

Usage: .venv/bin/python bench/translog_bench.py [--db sqlite|postgres] [--events 100000]
       [--rounds 5] [--chunk 5000] [--fill 1000000 --step 100000] [--profile OUT] [--steps]
       [--ingestion [--http]]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest_bench as ib  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from app.tlog import TiledLog  # noqa: E402
from app.tlog.tiles import MemoryTileStorage  # noqa: E402
from registry import settlement, translog  # noqa: E402
from registry.bulkdb import BulkDb  # noqa: E402

Rows = list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]  # per chunk: ledger, buckets


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def mmm(xs: list[float], fmt: str) -> str:
    """min / median / max of xs, each formatted with fmt."""
    return " / ".join(format(x, fmt) for x in (min(xs), statistics.median(xs), max(xs)))


@contextlib.contextmanager
def log_off() -> Iterator[None]:
    real = translog.log_entries, translog.log_ledger
    translog.log_entries = lambda _s, _rows: 0  # type: ignore[assignment]
    translog.log_ledger = lambda _s: 0  # type: ignore[assignment]
    try:
        yield
    finally:
        translog.log_entries, translog.log_ledger = real


@contextlib.contextmanager
def capture(into: Rows) -> Iterator[None]:
    """Record the ledger and bucket rows each settlement chunk writes."""
    real_insert, real_upsert = BulkDb.insert, BulkDb.upsert_add

    def insert(db: BulkDb, table: Any, columns: Any, rows: list[tuple[Any, ...]]) -> None:
        if table.name == "ledger":
            into[-1] = (list(rows), into[-1][1])
        real_insert(db, table, columns, rows)

    def upsert(db: BulkDb, table: Any, columns: Any, key: Any, rows: Any, *a: Any) -> int:
        into.append(([], list(rows)))
        return real_upsert(db, table, columns, key, rows, *a)

    real_log = translog.log_entries
    spent = APPEND.setdefault(len(APPEND), [0.0, 0.0, 0])  # wall, this thread's CPU, leaves

    def log_entries(session: Session, rows: Any) -> int:
        t0, c0 = time.perf_counter(), time.thread_time()
        n = real_log(session, rows)
        spent[0] += time.perf_counter() - t0
        spent[1] += time.thread_time() - c0
        spent[2] += n
        return n

    BulkDb.insert = insert  # type: ignore[method-assign,assignment]
    BulkDb.upsert_add = upsert  # type: ignore[method-assign,assignment]
    translog.log_entries = log_entries
    try:
        yield
    finally:
        BulkDb.insert, BulkDb.upsert_add = real_insert, real_upsert  # type: ignore[method-assign]
        translog.log_entries = real_log


# per captured settlement: the time spent in translog.log_entries (wall; CPU of the calling
# thread, not the database server's) and the leaves it appended
APPEND: dict[int, list[Any]] = {}


def ingest(sessions: sessionmaker[Session], cids: list[str], events: int, seed: int) -> None:
    for first in range(0, events // ib.BATCH, 50):
        n = min(50, events // ib.BATCH - first)
        ib.ingest_ours(
            sessions, ib.make_batches(cids, n, seed=seed + first, tag=f"s{seed}-{first}")
        )


def _backend(sessions: sessionmaker[Session]) -> Callable[[], float]:
    """CPU seconds so far of the PostgreSQL cluster serving `sessions` (0 on SQLite, whose
    work is in our own process time)."""
    url = sessions.kw["bind"].url
    if url.get_backend_name() != "postgresql":
        return lambda: 0.0
    pid = ib.postmaster_pid(url.render_as_string(hide_password=False))
    return (lambda: 0.0) if pid is None else (lambda: ib.tree_cpu(pid))


def _wal(sessions: sessionmaker[Session]) -> Callable[[], int]:
    """Bytes of WAL the PostgreSQL cluster has written so far (0 on SQLite)."""
    if sessions.kw["bind"].url.get_backend_name() != "postgresql":
        return lambda: 0

    def lsn() -> int:
        with sessions() as s:
            return int(s.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one())

    return lsn


WAL: list[int] = []  # WAL bytes of each settle() run, in order


def settle(sessions: sessionmaker[Session], chunk: int) -> tuple[int, float, float]:
    """Settle everything: (events, wall s, CPU s of this process + the database backends);
    the WAL bytes it wrote (PostgreSQL) appended to WAL."""
    backend, wal = _backend(sessions), _wal(sessions)
    w0 = wal()
    b0, c0, t0 = backend(), time.process_time(), time.perf_counter()
    total = 0
    while True:
        r = settlement.settle_once(sessions, share_ppm=ib.SHARE, limit=chunk)
        if not r.events:
            break
        total += r.events
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0 + backend() - b0
    WAL.append(wal() - w0)
    return total, wall, cpu


def floor(sessions: sessionmaker[Session], rows: Rows) -> tuple[float, float]:
    """The captured ledger and bucket rows inserted through the driver, a transaction per
    chunk (buckets upserted: later chunks add to buckets of earlier ones)."""
    ledger = settlement.LEDGER
    buckets = settlement.BUCKETS
    backend = _backend(sessions)
    b0, c0, t0 = backend(), time.process_time(), time.perf_counter()
    for ledger_rows, bucket_rows in rows:
        with sessions() as s:
            db = BulkDb(s)
            db.tune_for_bulk_writes()
            db.upsert_add(buckets, settlement.BUCKET_COLUMNS, settlement.BUCKET_KEY, bucket_rows)
            db.insert(ledger, settlement.LEDGER_COLUMNS, ledger_rows)
            s.commit()
    return time.perf_counter() - t0, time.process_time() - c0 + backend() - b0


def ab(new_url: Callable[[], str], args: argparse.Namespace, label: str) -> None:
    res: dict[str, list[tuple[float, float]]] = {"without": [], "with": [], "floor": []}
    wal: dict[str, list[int]] = {"without": [], "with": []}
    counts = (0, 0)
    loads: list[float] = []
    for rnd in range(args.rounds):
        order = ["without", "with", "floor"] if rnd % 2 == 0 else ["floor", "with", "without"]
        captured: Rows = []
        if order[0] == "floor":  # the floor replays the rows of this round's "with"
            order = ["with", "floor", "without"]
        for which in order:
            engine, sessions, cids = ib.prepared(new_url())
            try:
                if which == "floor":  # into an empty registry, like the settler's first chunk
                    wall, cpu = floor(sessions, captured)
                    res["floor"].append((args.events / wall, cpu))
                    continue
                ingest(sessions, cids, args.events, seed=rnd)
                ctx = log_off() if which == "without" else capture(captured)
                with ctx:
                    n, wall, cpu = settle(sessions, args.chunk)
                assert n == args.events
                res[which].append((n / wall, cpu))
                wal[which].append(WAL[-1])
                if which == "with":
                    with sessions() as s:
                        counts = (
                            int(s.execute(text("SELECT count(*) FROM ledger")).scalar_one()),
                            translog.tree_size(s),
                        )
            finally:
                engine.dispose()
        loads.append(os.getloadavg()[0])
        print(f"[{label}] round {rnd + 1}/{args.rounds} done, load {_load()}", flush=True)

    print(f"[{label}] {args.events:,} events per round, chunks of {args.chunk:,}; {counts[0]:,} "
          f"ledger entries, {counts[1]:,} log leaves; min / median / max")  # fmt: skip
    for which in ("without", "with", "floor"):
        rates = [r for r, _ in res[which]]
        cpus = [c * 1e6 / args.events for _, c in res[which]]
        what = {"without": "settlement, no log", "with": "settlement + log   ",
                "floor": "floor: raw insert  "}[which]  # fmt: skip
        print(f"[{label}]   {what}: {mmm(rates, ',.0f')} ev/s; CPU {mmm(cpus, '.1f')} µs/event")
    # the log's share per round (with vs without of the same round), then over the rounds
    wall_share = [w / l_ - 1 for (w, _), (l_, _) in zip(res["without"], res["with"], strict=True)]
    cpu_share = [cl / cw - 1 for (_, cw), (_, cl) in zip(res["without"], res["with"], strict=True)]
    pct = [x * 100 for x in wall_share]
    print(f"[{label}]   log share, wall: {mmm(pct, '+.1f')} % (per round; target <= 10 %)")
    pct = [x * 100 for x in cpu_share]
    print(f"[{label}]   log share, CPU:  {mmm(pct, '+.1f')} %")
    log_us = [
        (cl - cw) * 1e6 / args.events
        for (_, cw), (_, cl) in zip(res["without"], res["with"], strict=True)
    ]
    print(f"[{label}]   log CPU per event: {mmm(log_us, '.1f')} µs; per leaf: "
          f"{mmm([u * args.events / max(counts[1], 1) for u in log_us], '.2f')} µs")  # fmt: skip
    spent = [v for v in APPEND.values() if v[2]][-args.rounds :]
    if spent:
        walls = [w * 1e6 / n for w, _, n in spent]
        cpus = [c * 1e6 / n for _, c, n in spent]
        print(
            f"[{label}]   the append itself (translog.log_entries, the commit not counted): "
            f"wall {mmm(walls, '.2f')} µs a leaf, its thread's CPU {mmm(cpus, '.2f')}"
        )
    if any(wal["with"]):
        per = {k: [b / args.events for b in v] for k, v in wal.items()}
        log_b = [
            (w - o) * args.events / max(counts[1], 1)
            for w, o in zip(per["with"], per["without"], strict=True)
        ]
        print(f"[{label}]   WAL bytes per event: no log {mmm(per['without'], ',.0f')}, with the "
              f"log {mmm(per['with'], ',.0f')}; log a leaf {mmm(log_b, ',.0f')}")  # fmt: skip
    print(f"[{label}]   load average over the rounds (1 min): {mmm(loads, '.1f')}", flush=True)


def steps(new_url: Callable[[], str], args: argparse.Namespace, label: str) -> None:
    """The log append's steps, each alone, over the ledger rows of one real settlement chunk
    (best of 7, CPU µs per leaf), next to the bare SHA-256 work they cannot avoid: what the
    log costs at least, whatever the storage."""
    engine, sessions, cids = ib.prepared(new_url())
    try:
        ingest(sessions, cids, args.chunk, seed=1)
        captured: Rows = []
        with capture(captured):
            settle(sessions, args.chunk)
    finally:
        engine.dispose()
    rows = [r for ledger_rows, _ in captured for r in ledger_rows]
    ids = range(1, len(rows) + 1)
    sha = hashlib.sha256
    datas = translog._render_settled(ids, rows)
    hashes = [sha(b"\x00" + d).digest() for d in datas]

    class NoDb:  # _write_bundles' framing without the statement
        dialect = "sqlite"

        def fetch(self, sql: str, params: Any = ()) -> list[Any]:
            return []

    def tiles() -> None:
        log = TiledLog(MemoryTileStorage(), 0)
        log.append(hashes)
        log.root()

    def nodes() -> None:
        cur = hashes
        while len(cur) > 1:
            cur = [sha(b"\x01" + cur[i] + cur[i + 1]).digest() for i in range(0, len(cur) - 1, 2)]

    blob = b"".join(datas)
    print(f"[{label}] the log's steps over one chunk's {len(rows):,} leaves (CPU µs per leaf, "
          f"best of 7; load {_load()}):")  # fmt: skip
    for what, fn in (
        (
            "render the leaves (translog._render_settled)",
            lambda: translog._render_settled(ids, rows),
        ),
        ("leaf hashes, sha256(0x00 + leaf)", lambda: [sha(b"\x00" + d).digest() for d in datas]),
        ("hash tiles: TiledLog.append + root", tiles),
        ("  the bare node hashes alone (n - 1 SHA-256)", nodes),
        ("entry bundles: framing, no statement", lambda: translog._write_bundles(NoDb(), 0, datas)),  # type: ignore[arg-type]
        ("SHA-256 of all leaf bytes in one call", lambda: sha(blob).digest()),
    ):
        best = min(_cpu(fn) for _ in range(7))
        print(f"[{label}]   {what:46s} {best * 1e6 / len(rows):6.2f}", flush=True)


def _cpu(fn: Callable[[], object]) -> float:
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def fill(new_url: Callable[[], str], args: argparse.Namespace, label: str) -> None:
    engine, sessions, cids = ib.prepared(new_url())
    try:
        done = 0
        step = 0
        while done < args.fill:
            n = min(args.step, args.fill - done)
            t = time.perf_counter()
            ingest(sessions, cids, n, seed=1000 + step)
            took_in = time.perf_counter() - t
            pr = cProfile.Profile() if args.profile and done + n >= args.fill else None
            if pr:
                pr.enable()
            settled, wall, cpu = settle(sessions, args.chunk)
            if pr:
                pr.disable()
                with open(args.profile, "w") as out:
                    pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(40)
            done += settled
            step += 1
            print(f"[{label}] fill {done:>9,}: settled {settled:,} in {wall:.2f} s = "
                  f"{settled / wall:,.0f} ev/s (CPU {cpu * 1e6 / settled:.1f} µs/event; intake "
                  f"{n / took_in:,.0f} ev/s) load {_load()}", flush=True)  # fmt: skip
        with sessions() as s:
            entries = int(s.execute(text("SELECT count(*) FROM ledger")).scalar_one())
            print(f"[{label}] filled: {done:,} events, {entries:,} ledger entries, "
                  f"{translog.tree_size(s):,} log leaves", flush=True)  # fmt: skip
    finally:
        engine.dispose()


def _intake_http(
    url: str, sessions: sessionmaker[Session], cids: list[str], n_batches: int, rnd: int
) -> tuple[float, float]:
    """The batches posted to `POST /v1/usage` of a registry serving `url` (`serve
    --no-settler`, stopped before settlement), one client on a keep-alive connection: (wall s,
    CPU s of the serve process and, on PostgreSQL, of the cluster). The bodies are encoded
    before the clock starts."""
    bodies, _ = ib.body_templates(cids, n_batches)
    backend = _backend(sessions)
    with ib.live_registry(url, "--no-settler") as (server, op):
        assert server.proc is not None
        poster = ib.Poster(server.base_url, op.headers, bodies)
        pid = server.proc.pid
        s0, b0 = ib.tree_cpu(pid), backend()
        wall = poster.run(f"h{rnd}-", 0, n_batches, 1)
        cpu = ib.tree_cpu(pid) - s0 + backend() - b0
    return wall, cpu


def ingestion(new_url: Callable[[], str], args: argparse.Namespace, label: str) -> None:
    """Intake + settlement of the same events without and with the log, timed as a whole
    (see the module doc, 4.)."""
    parts = ("intake", "settle", "total")
    # res[which][part]: per round (wall s, CPU s of this process + the database cluster)
    res: dict[str, dict[str, list[tuple[float, float]]]] = {
        w: {p: [] for p in parts} for w in ("without", "with")
    }
    loads: list[float] = []
    n_batches = args.events // ib.BATCH
    events = n_batches * ib.BATCH
    for rnd in range(args.rounds):
        order = ["without", "with"] if rnd % 2 == 0 else ["with", "without"]
        for which in order:
            url = new_url()
            engine, sessions, cids = ib.prepared(url)
            try:
                if args.http:
                    in_wall, in_cpu = _intake_http(url, sessions, cids, n_batches, rnd)
                else:
                    # the events (the request bodies, parsed) are made before the clock starts
                    batches = ib.make_batches(cids, n_batches, seed=rnd, tag=f"i{rnd}")
                    backend = _backend(sessions)
                    b0, c0, t0 = backend(), time.process_time(), time.perf_counter()
                    ib.ingest_ours(sessions, batches)
                    in_wall = time.perf_counter() - t0
                    in_cpu = time.process_time() - c0 + backend() - b0
                    del batches
                with log_off() if which == "without" else contextlib.nullcontext():
                    n, wall, cpu = settle(sessions, args.chunk)
                assert n == events, (n, events)
                if which == "with":
                    with sessions() as s:
                        assert translog.tree_size(s) > 0
                got = res[which]
                got["intake"].append((in_wall, in_cpu))
                got["settle"].append((wall, cpu))
                got["total"].append((in_wall + wall, in_cpu + cpu))
            finally:
                engine.dispose()
        loads.append(os.getloadavg()[0])
        print(f"[{label}] round {rnd + 1}/{args.rounds} done, load {_load()}", flush=True)

    how = (
        "intake over HTTP (POST /v1/usage, 1 client, serve --no-settler; intake CPU = the "
        "serve process + PostgreSQL, the bench client not counted)"
        if args.http
        else "intake in-process (plan_batch + write_batch + commit)"
    )
    print(f"[{label}] ingestion path: {events:,} events per round (batches of {ib.BATCH:,}, "
          f"{ib.ATTRIBUTIONS} attributions each, 90 days), settlement chunks of {args.chunk:,}, "
          f"{args.rounds} rounds; {how}; min / median / max")  # fmt: skip
    cpu_what = "CPU (process + PostgreSQL)" if "postgres" in label else "CPU (process)"
    if args.http:
        cpu_what = cpu_what.replace("process", "serve/settler")
    print(f"[{label}]   {'':34s} {'wall µs/event':^30s}   {cpu_what + ' µs/event':^30s}")
    for which in ("without", "with"):
        for part in parts:
            what = {"intake": "intake", "settle": "settlement", "total": "intake + settlement"}
            walls = [w * 1e6 / events for w, _ in res[which][part]]
            cpus = [c * 1e6 / events for _, c in res[which][part]]
            name = f"{which + ' log,':13s} {what[part]}"
            print(f"[{label}]   {name:34s} {mmm(walls, '8.1f')}   {mmm(cpus, '8.1f')}")

    def share(part: str, k: int) -> list[float]:
        return [
            (w[k] / o[k] - 1) * 100
            for o, w in zip(res["without"][part], res["with"][part], strict=True)
        ]

    def extra(k: int) -> list[float]:
        """The log's added settlement time over the round's whole path without the log: the
        share of intake + settlement with the intake noise of two runs of the same code left
        out."""
        return [
            (ws[k] - os_[k]) / ot[k] * 100
            for os_, ws, ot in zip(
                res["without"]["settle"], res["with"]["settle"], res["without"]["total"],
                strict=True,
            )
        ]  # fmt: skip

    print(f"[{label}]   the log's share per round (with vs without of the same round; "
          f"target <= 10 %):")  # fmt: skip
    print(f"[{label}]     of settlement alone:        wall {mmm(share('settle', 0), '+6.1f')} %"
          f"   CPU {mmm(share('settle', 1), '+6.1f')} %")  # fmt: skip
    print(f"[{label}]     of intake + settlement:     wall {mmm(share('total', 0), '+6.1f')} %"
          f"   CPU {mmm(share('total', 1), '+6.1f')} %")  # fmt: skip
    print(
        f"[{label}]     (settlement's difference over"
        f" the no-log total: wall {mmm(extra(0), '+6.1f')} %   CPU {mmm(extra(1), '+6.1f')} %)"
    )
    print(f"[{label}]     intake alone (no leaf; noise): wall {mmm(share('intake', 0), '+6.1f')} %"
          f"   CPU {mmm(share('intake', 1), '+6.1f')} %")  # fmt: skip
    print(f"[{label}]   load average over the rounds (1 min): {mmm(loads, '.1f')}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=settlement.CHUNK_EVENTS)
    ap.add_argument("--fill", type=int, default=0, help="fill to this many events (no A/B)")
    ap.add_argument("--step", type=int, default=100_000)
    ap.add_argument("--profile", help="cProfile of the last fill step to this file")
    ap.add_argument("--steps", action="store_true", help="the log's steps alone, per leaf")
    ap.add_argument(
        "--ingestion", action="store_true", help="intake + settlement with and without the log"
    )
    ap.add_argument("--http", action="store_true", help="--ingestion: intake over HTTP")
    args = ap.parse_args()
    print(f"load average before: {_load()}", flush=True)
    run = steps if args.steps else ingestion if args.ingestion else fill if args.fill else ab
    if args.db == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="translog-bench-"))
        try:
            counter = iter(range(10_000))
            run(lambda: f"sqlite:///{tmp / f'r{next(counter)}.sqlite3'}", args, "sqlite")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        with ib.postgres_cluster() as server:
            run(lambda: ib.pg_database(server), args, "postgres")
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
