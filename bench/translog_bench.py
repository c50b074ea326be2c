"""Transparency-log append cost in the registry: settlement with and without the log, same run.

One SQLite registry database is prepared per round (models, contributions, --events usage
events ingested through registry.ledger, 3 attributions each, spread over 30 days). Then the
whole usage log is settled (`registry.settlement.settle_pending`, chunks of 5,000 events),
alternately:
  without  `registry.translog.log_ledger` replaced by a no-op (the ledger alone)
  with     the real one: every ledger entry becomes a leaf, its tiles and a signed checkpoint
           are written in the settlement's transaction
If the settler in this tree does not call the log itself, the "with" run logs the new ledger
entries right after each settlement, in its own transaction, and that time is added.

Printed: min / median of each over --rounds rounds, the log's share of settlement time
(target: <= 10 %), and ledger entries and leaves per round. Also the app side: the time to
prove (registry) and verify (app) the inclusion of every contributor entry of one owner.

Usage: .venv/bin/python bench/translog_bench.py [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.tlog import InclusionBatch, leaf_hash  # noqa: E402
from registry import settlement, translog  # noqa: E402
from registry.db.models import ROLE_OPERATOR  # noqa: E402
from registry.db.session import make_engine, make_sessionmaker, migrate  # noqa: E402
from registry.db.usage_models import Model  # noqa: E402
from registry.ledger import AttributionIn, EventIn, ingest_events  # noqa: E402
from tests.support.usage_data import add_contributions, ensure_key  # noqa: E402

SHARE_PPM = 700_000
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


def prepare(folder: Path, events: int) -> tuple[object, list[str], str]:
    engine = make_engine(f"sqlite:///{folder / 'registry.sqlite3'}")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    operator = secrets.token_hex(32)
    with sessions() as s:
        ensure_key(s, operator, operator[:64], ROLE_OPERATOR)
        s.add(Model(id="bench-model", name="Bench", operator_fingerprint=operator[:64]))
        s.commit()
        owners = [secrets.token_hex(32) for _ in range(20)]
        cids = [c for o in owners for c in add_contributions(s, o, 5)]
    batch = []
    for i in range(events):
        atts = tuple(
            AttributionIn(cids[(i * 7 + k * 13) % len(cids)], 1 + k, m)
            for k, m in enumerate(("influence", "retrieval", "exact-match"))
        )
        at = DAY0 + timedelta(minutes=(i * 37) % (30 * 24 * 60))
        batch.append(EventIn(f"e{i}", "bench-model", at, 1000 + i % 977, atts))
        if len(batch) == 1000 or i == events - 1:
            with sessions() as s:
                ingest_events(
                    s, operator=operator[:64], events=batch, share_ppm=SHARE_PPM,
                    now=DAY0 + timedelta(days=31),
                )  # fmt: skip
                s.commit()
            batch = []
    return engine, cids, owners[0]


def settle(engine: object, with_log: bool) -> tuple[float, int, int]:
    sessions = make_sessionmaker(engine)  # type: ignore[arg-type]
    real = translog.log_ledger
    calls = [0]

    def counted(session: object) -> int:
        calls[0] += 1
        return real(session)  # type: ignore[arg-type]

    translog.log_ledger = counted if with_log else (lambda _session: 0)  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        settlement.settle_pending(sessions, share_ppm=SHARE_PPM)
        if with_log and calls[0] == 0:  # the settler does not log: log afterwards
            with sessions() as s:
                real(s)
                s.commit()
        elapsed = time.perf_counter() - t0
    finally:
        translog.log_ledger = real
    with sessions() as s:
        entries = int(s.execute(text("SELECT count(*) FROM ledger")).scalar_one())
        leaves = int(s.execute(text("SELECT count(*) FROM log_leaves")).scalar_one())
    return elapsed, entries, leaves


def prove_and_verify(engine: object, owner_key: str) -> tuple[int, float, float]:
    sessions = make_sessionmaker(engine)  # type: ignore[arg-type]
    with sessions() as s:
        ids = [
            str(r[0])
            for r in s.execute(
                text("SELECT id FROM ledger WHERE kind = 'contributor' ORDER BY id LIMIT 10000")
            )
        ]
        size = translog.tree_size(s)
        t0 = time.perf_counter()
        found = translog.leaf_of(s, translog.KIND_LEDGER, ids)
        log = translog.tiled_log(s, size)
        proofs = [(idx, leaf, log.inclusion_proof(idx, size)) for idx, leaf in found.values()]
        root = log.root()
        proved = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = InclusionBatch(size, root)
    for idx, leaf, proof in proofs:
        batch.verify(idx, leaf_hash(leaf), proof)
    verified = time.perf_counter() - t0
    return len(proofs), proved, verified


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    times: dict[bool, list[float]] = {False: [], True: []}
    counts: tuple[int, int] = (0, 0)
    last_engine = None
    for r in range(args.rounds):
        for with_log in (False, True) if r % 2 == 0 else (True, False):
            with tempfile.TemporaryDirectory(prefix="translog-bench-") as tmp:
                engine, _cids, owner = prepare(Path(tmp), args.events)
                elapsed, entries, leaves = settle(engine, with_log)
                times[with_log].append(elapsed)
                if with_log:
                    counts = (entries, leaves)
                    if r == args.rounds - 1:
                        n, proved, verified = prove_and_verify(engine, owner)
                        last_engine = (n, proved, verified)
                engine.dispose()  # type: ignore[attr-defined]
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    print(f"events settled per round: {args.events:,}; ledger entries {counts[0]:,}, "
          f"log leaves {counts[1]:,}")  # fmt: skip
    print(f"settle without log: min {min(times[False]):.3f} s  median {without:.3f} s")
    print(f"settle with log:    min {min(times[True]):.3f} s  median {with_:.3f} s")
    share = (with_ - without) / without * 100
    print(f"log append cost: +{share:.1f} % of settlement time (target <= 10 %)")
    if last_engine is not None:
        n, proved, verified = last_engine
        print(f"{n:,} inclusion proofs: computed from the tile table {proved:.3f} s, "
              f"verified (InclusionBatch) {verified:.3f} s")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
