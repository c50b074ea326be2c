"""A contributor's sync of 1,000,000 settled usage events, and the Rewards page's first paint
after it, against a real registry on loopback.

The registry (SQLite, built once under bench/out/) holds `--events` events with 3 attributions
each across `--contributions` contributions of one contributor, `--models` models, the last
`--days` days, taken in through the registry's own intake (plan + write, batches of 1,000) and
settled by its settler into aggregated ledger entries. `contributor-registry serve` then serves
it on 127.0.0.1, and each round:

1. a desk with that contributor's key and an empty rewards copy runs the same sync as the GUI
   and `contributor-desk sync` (ledger pages, transparency-log proofs, usage windows of every
   accepted contribution, rollups; the next ledger pages as soon as the one before is in,
   their leaves and tiles on a second worker and the next usage windows are read on worker
   threads, 25 to a request, while the current ones are checked and stored, so the per-part
   read times overlap the rest): wall time, client CPU (all its threads) and the registry
   process's CPU; then the evidence continuation that follows it
   (`RewardsSync.continue_evidence`: in the GUI on a worker after the sync's numbers are
   shown), timed on its own; then a second sync
   with nothing new (it reads no usage window: app.services.usage_plan, and no evidence) and
   its continuation, and a third with every stored window a day old (all 500 read again, as
   every sync did before the windows were planned);
2. the baseline in the same round: the same HTTP reads by the same client (every ledger page,
   every usage window, 25 to a request), nothing checked or stored;
3. the Rewards page's first paint from that copy: the GUI's own loads (overview, chart buckets,
   log status), the page filled and painted (`grab()`).

Targets: first sync < 10 s, a sync with nothing new < 200 ms, first paint < 1 s. Prints min /
median / max over `--rounds` rounds and the load average.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/usage_sync_bench.py
     [--events 1000000 --contributions 500 --models 2 --days 30 --rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

OUT = ROOT / "bench" / "out"
METHODS = ("influence", "exact-match", "retrieval")
OPERATOR = "a" * 64
SHARE = 700_000
BATCH = 1000


def _load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _stats(name: str, secs: list[float]) -> float:
    ms = [t * 1000 for t in secs]
    med = statistics.median(ms)
    print(f"  {name:<46} min {min(ms):8.0f} ms  median {med:8.0f} ms  max {max(ms):8.0f} ms")
    return med


def _keyring(folder: Path) -> None:
    from tests.support.keyrings import ENV_DIR

    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(folder)
    os.environ["PYTHON_KEYRING_BACKEND"] = "tests.support.keyrings.FileTestKeyring"
    import keyring

    from tests.support.keyrings import FileTestKeyring

    keyring.set_keyring(FileTestKeyring())


def _build(place: Path, args: argparse.Namespace) -> None:
    """The registry's database filled and settled, and a desk template (identity, accepted
    catalogue items naming the contributions, no rewards copy)."""
    from app.services.context import ServiceContext
    from app.services.identity import IdentityService
    from app.store.models import Item
    from registry.bulkdb import BulkDb
    from registry.db.models import ROLE_OPERATOR, Key
    from registry.db.session import make_engine, make_sessionmaker, migrate
    from registry.db.usage_models import Model
    from registry.ledger import AttributionIn, EventIn, plan_batch, write_batch
    from registry.settlement import settle_once
    from tests.support.usage_data import add_contributions

    desk = ServiceContext(place / "desk", "http://127.0.0.1:1")
    IdentityService(desk).init()
    me = IdentityService(desk).current()
    assert me is not None
    engine = make_engine(f"sqlite:///{place / 'registry.sqlite3'}")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    models = [f"bench-model-{m}" for m in range(args.models)]
    with sessions() as s:
        s.add(Key(fingerprint=OPERATOR, public_key="0" * 64, role=ROLE_OPERATOR))
        s.flush()
        for m in models:
            name = f"Model {m[-1]}"
            s.add(Model(id=m, name=name, description="", operator_fingerprint=OPERATOR, demo=False))
        s.commit()
        cids = add_contributions(s, me.fingerprint, args.contributions, public_key=me.public_key)
    with desk.db.session() as s:
        for n, cid in enumerate(cids):
            s.add(
                Item(
                    kind="dataset",
                    title=f"Bench set {n + 1}",
                    source_path=f"/bench/{n}",
                    state="accepted",
                    registry_url="http://127.0.0.1:1",
                    registry_id=cid,
                )
            )
        s.commit()
    desk.close()
    rng = random.Random(3)
    now = datetime.now(UTC)
    start = time.perf_counter()
    total = args.events
    # Oldest first, as a registry receives them.
    ages = sorted((rng.randrange(args.days * 86_400) for _ in range(total)), reverse=True)
    for b in range(0, total, BATCH):
        batch = []
        for i in range(b, min(total, b + BATCH)):
            picked = rng.sample(cids, 3)
            batch.append(
                EventIn(
                    event_id=f"ev-{i}",
                    model_id=models[i % len(models)],
                    at=now - timedelta(seconds=ages[i]),
                    fee_micro=rng.randrange(100, 10_000),
                    attributions=tuple(
                        AttributionIn(c, rng.randrange(1, 1000) / 1000, METHODS[j])
                        for j, c in enumerate(picked)
                    ),
                )
            )
        with sessions() as s:
            db = BulkDb(s)
            result, rows = plan_batch(db, OPERATOR, batch, SHARE)
            assert len(result.accepted) == len(batch), result.rejected[:1]
            write_batch(s, db, rows)
            s.commit()
        if b % 100_000 == 0:
            print(f"  intake {b:,} events, {time.perf_counter() - start:.0f} s", flush=True)
    settled = 0
    while (r := settle_once(sessions, share_ppm=SHARE, limit=50_000)).events:
        settled += r.events
    engine.dispose()
    conn = sqlite3.connect(place / "registry.sqlite3")
    entries = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    conn.close()
    print(f"  built in {time.perf_counter() - start:.0f} s: {settled:,} events settled, "
          f"{entries:,} ledger entries")  # fmt: skip


SPENT: dict[str, float] = {}
CALLS: dict[str, int] = {}


def _timed(owner: Any, name: str, label: str) -> None:
    """Wall time spent in `owner.name` added up under `label` (where a sync's time goes)."""
    inner = getattr(owner, name)

    def timed(*args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return inner(*args, **kw)
        finally:
            SPENT[label] = SPENT.get(label, 0.0) + time.perf_counter() - t
            CALLS[label] = CALLS.get(label, 0) + 1

    setattr(owner, name, timed)


def _instrument() -> None:
    from app.registry_client import usage
    from app.services import rewards
    from app.services.registry_identity import RegistryDirectory
    from app.services.rewards import RewardsSync
    from app.services.transparency import LogSync
    from app.store import rollups

    # Reads run on read-ahead workers and writes on the sync's writer while the sync checks
    # what came before or after: their time overlaps the rest (it is not part of the sum of
    # the other lines).
    _timed(rewards, "rewards_after", "ledger page reads (HTTP + parse, on workers)")
    _timed(usage, "parse_reward", "  of which parsing entries")
    _timed(RewardsSync, "_read_windows", "usage window reads (on workers)")
    _timed(RewardsSync, "_store_page", "store ledger pages + leaf events + rollups (writer)")
    _timed(rollups, "add_new_ledger", "  of which the ledger rollups")
    _timed(RewardsSync, "_store_proven", "store the verified inclusions (writer)")
    _timed(RewardsSync, "_plan_windows", "plan usage windows + rollups")
    _timed(RewardsSync, "_write_windows", "write usage windows + rollups (writer)")
    _timed(RegistryDirectory, "learn", "registry identity (learn)")
    _timed(RewardsSync, "_sync_models", "models")
    _timed(rewards, "load_plan", "usage plan")
    for name in ("start", "verify", "verify_acceptances", "check_usage", "finish"):
        if hasattr(LogSync, name):
            _timed(LogSync, name, "transparency log (start, verify, checks, finish)")


def _server_cpu(pid: int) -> float:
    """The registry process's CPU seconds so far (user + system), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fetch_only(url: str, ctx: Any) -> int:
    """Baseline: every ledger page and usage window the sync reads, over the same client, in
    the same requests (the windows 25 to a read from a registry that serves that)."""
    from app.registry_client.usage import (
        USAGE_WINDOWS_READ,
        rewards_after,
        usage_window,
        usage_windows,
    )
    from app.services.clients import make_client
    from app.services.registry_identity import parse_reads
    from app.services.rewards import USAGE_READ_BATCH
    from app.store.models import Item

    client = make_client(ctx)
    many = USAGE_WINDOWS_READ in parse_reads(client.http.json("GET", "/v1/health", auth=False))
    try:
        cursor = None
        n = 0
        while True:
            page = rewards_after(client, cursor)
            n += len(page.items)
            if not page.has_more or page.next_cursor in (None, cursor):
                break
            cursor = page.next_cursor
        since = datetime.now(UTC).date() - timedelta(days=89)
        with ctx.db.session() as s:
            cids = [c for (c,) in s.query(Item.registry_id).filter(Item.registry_id.is_not(None))]
        if many:
            for i in range(0, len(cids), USAGE_READ_BATCH):
                usage_windows(client, [str(c) for c in cids[i : i + USAGE_READ_BATCH]], since=since)
        else:
            for cid in cids:
                usage_window(client, str(cid), since=since)
    finally:
        client.close()
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--contributions", type=int, default=500)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"usage sync bench: {_load()}")
    place = OUT / f"sync-{args.events}-{args.contributions}-{args.models}-{args.days}"
    _keyring(place / "keyring")
    if not (place / "built").exists():
        shutil.rmtree(place / "desk", ignore_errors=True)
        (place / "registry.sqlite3").unlink(missing_ok=True)
        place.mkdir(parents=True, exist_ok=True)
        _keyring(place / "keyring")
        _build(place, args)
        (place / "built").write_text("ok\n")

    from PySide6.QtWidgets import QApplication

    from app.services.context import ServiceContext
    from app.services.identity import IdentityService
    from app.services.rewards import RewardsSync, open_review
    from app.services.usage_history import usage_data
    from app.ui.adapters.rewards_adapter import GuiRewards, with_usage
    from app.ui.app import ensure_app
    from app.ui.pages.rewards_view import RewardsView
    from app.ui.theme import apply_theme
    from tests.support.registry_server import RegistryProcess
    from tests.support.rewards_flow import age_usage_windows

    blobs = place / "blobs"
    server = RegistryProcess(
        f"sqlite:///{place / 'registry.sqlite3'}",
        blobs,
        extra_args=("--rate-limit", "1000000", "--no-settler"),
    )
    url = server.start()
    pid = server.proc.pid if server.proc is not None else 0
    _instrument()
    app = ensure_app()
    theme = apply_theme(app, "light")
    phases = ("first sync", "evidence after the first sync", "sync with nothing new",
              "evidence after the sync with nothing new",
              "sync with nothing new, every window read again")  # fmt: skip
    walls: dict[str, list[float]] = {p: [] for p in phases}
    cpus: dict[str, list[float]] = {p: [] for p in phases}
    server_cpus: dict[str, list[float]] = {p: [] for p in phases}
    parts: dict[str, dict[str, list[float]]] = {p: {} for p in phases}
    fetch, fetch_cpu, loads, paints, ours = [], [], [], [], []
    entries = 0
    try:
        for rnd in range(args.rounds):
            work = place / f"round-{rnd}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(place / "desk", work)
            ctx = ServiceContext(work, url)
            try:
                from app.services.clients import make_client

                owner = IdentityService(ctx).current()
                assert owner is not None
                t, c = time.perf_counter(), time.process_time()
                entries = _fetch_only(url, ctx)
                fetch.append(time.perf_counter() - t)
                fetch_cpu.append(time.process_time() - c)
                last: Any = None
                client: Any = None
                for phase in phases:
                    if phase.startswith("evidence"):
                        sync = last  # the continuation of the sync just timed
                    else:
                        if phase.endswith("read again"):  # every window a day old: all
                            age_usage_windows(ctx)  # read again, as before planned windows
                        client = make_client(ctx)
                    SPENT.clear()
                    CALLS.clear()
                    t, c, sc = time.perf_counter(), time.process_time(), _server_cpu(pid)
                    if phase.startswith("evidence"):
                        evidence = sync.continue_evidence()
                        client.close()
                        what = (f"{evidence.events:,} events read, "
                                f"{evidence.entries_left:,} entries left")  # fmt: skip
                    else:
                        last = RewardsSync(ctx, client, owner.fingerprint)
                        report = last.run()
                        what = f"{report.new_entries:,} new entries"
                    walls[phase].append(time.perf_counter() - t)
                    cpus[phase].append(time.process_time() - c)
                    server_cpus[phase].append(_server_cpu(pid) - sc)
                    if phase.endswith("read again"):
                        client.close()
                    print(
                        f"  round {rnd + 1}: {phase} {walls[phase][-1]:.3f} s (client CPU "
                        f"{cpus[phase][-1]:.2f} s, registry CPU {server_cpus[phase][-1]:.2f} s),"
                        f" {what}; {_load()}",
                        flush=True,
                    )
                    for label, secs in sorted(SPENT.items()):
                        parts[phase].setdefault(label, []).append(secs)
                        print(f"    {label}: {secs:.3f} s ({CALLS.get(label, 0):,} calls)")
                gui = GuiRewards(ctx, demo_seed=lambda: None)
                review = open_review(ctx, owner.fingerprint)
                t = time.perf_counter()
                with_usage(review.overview(), usage_data(review))  # the rollups' share
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                page = gui.overview()  # the same, with the transparency log's status
                t1 = time.perf_counter()
                view = RewardsView(theme)
                view.resize(1410, 930)
                view.show()
                view.show_overview(page)
                view.grab()
                QApplication.processEvents()
                t2 = time.perf_counter()
                loads.append(t1 - t)
                paints.append(t2 - t1)
                view.close()
                view.deleteLater()
                QApplication.processEvents()
                overview = open_review(ctx, owner.fingerprint).overview()
                events = sum(e for _d, e, _r in overview.daily)
                print(f"  copy: {overview.entries:,} ledger entries, {events:,} attributions")
            finally:
                ctx.close()
                shutil.rmtree(work, ignore_errors=True)
    finally:
        server.kill(signal.SIGTERM)
    print(f"{args.events:,} events x 3 attributions, {args.contributions} contributions, "
          f"{args.models} models, {args.days} days, {entries:,} ledger entries; "
          f"{args.rounds} rounds; {_load()}")  # fmt: skip
    for phase in phases:
        _stats(phase, walls[phase])
        _stats("  client CPU", cpus[phase])
        _stats("  registry CPU", server_cpus[phase])
        for label, secs in sorted(parts[phase].items()):
            _stats(f"  {label}", secs + [0.0] * (args.rounds - len(secs)))
    if entries:
        per = statistics.median(cpus["first sync"]) / entries * 1e6
        print(f"  first sync: client CPU {per:.1f} us per ledger entry (median)")
    med_fetch = _stats("baseline: the same HTTP reads, nothing stored", fetch)
    _stats("  client CPU", fetch_cpu)
    _stats("first paint: load (overview, buckets, log)", loads)
    _stats("  of which overview + chart buckets", ours)
    _stats("first paint: fill + paint", paints)
    _stats("first paint: total", [a + b for a, b in zip(loads, paints, strict=True)])
    med_first = statistics.median(walls["first sync"]) * 1000  # ms, as _stats returns
    print(f"  first sync / baseline (median): {med_first / med_fetch:.2f}x   {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
