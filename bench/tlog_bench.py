"""Transparency-log core (app.tlog): what the app and the registry do with the log, timed.

  verify   the app's sync: open a signed checkpoint and verify the inclusion proofs of 10,000
           of its entries (leaf bytes hashed, proofs checked against the checkpoint's root);
           and what the app does now: the hash tiles holding them verified against the root
           once (app.tlog.tileset), each leaf hash compared with its tile's (10,000 dense
           leaves, and the random sample, the sparse case the app proves by proofs instead)
  audit    ``audit`` offline: 100,000 stored entries re-hashed and their stored proofs checked
           against the checkpoints they were synced with, every checkpoint's signature and the
           consistency proof between each checkpoint and the next; and from stored tiles:
           every stored tile re-verified, each entry's leaf hash against its tile
  app      with --app-audit N: the app's own `audit` (app.services.transparency) over a
           catalogue holding N entries verified by tiles (rows, tiles, a pinned key and a
           signed checkpoint, written straight into a temporary catalogue)
  append   the registry: leaves appended to a tiled log in settlement batches, every changed
           hash tile written (to memory)

Each is timed over --rounds rounds (min / median / max) beside its baseline in the same run:
bare ``hashlib.sha256`` over exactly as many hash inputs of the same sizes, in a plain loop.
The load average is printed before and after: the host is shared.

Usage: .venv/bin/python bench/tlog_bench.py [--log-size 1000000] [--verify 10000]
       [--audit 100000] [--checkpoints 100] [--batch 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tlog import (  # noqa: E402
    Checkpoint,
    InclusionBatch,
    MemoryTileStorage,
    Signer,
    TiledLog,
    TileReader,
    leaf_hash,
    open_checkpoint,
    tiles_for_size,
    verify_consistency,
    verify_inclusion,
)
from app.tlog.merkle import HASH_SIZE  # noqa: E402
from app.tlog.tileset import TileSet, verify_stored_tiles  # noqa: E402

ORIGIN = "registry.example/log"


def entry(i: int) -> bytes:
    """A ledger entry of realistic size (canonical JSON, ~230 bytes)."""
    return (
        b'{"amount":%d,"contribution":"c%07d","currency":"micro-usd","eventDigest":"%064x",'
        b'"id":%d,"kind":"contributor","settledAt":"2026-12-06T00:00:00Z","to":"%064x"}'
        % (i * 37 % 100_000, i % 9_999_991, i * 2_654_435_761, i, i % 1000)
    )


def rounds(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def show(label: str, ours: list[float], base: list[float], target: float | None = None) -> None:
    med, bmed = statistics.median(ours), statistics.median(base)
    verdict = ""
    if target is not None:
        verdict = f"  target < {target:g} s: {'met' if med < target else 'NOT MET'}"
    print(
        f"  {label:<34} min {min(ours):7.3f}  median {med:7.3f}  max {max(ours):7.3f} s"
        f"   baseline median {bmed:7.3f} s   ratio {med / bmed:5.2f}x{verdict}"
    )


def baseline(inputs: list[int]) -> Callable[[], None]:
    """hashlib.sha256 over as many inputs of these byte lengths, nothing else."""
    bufs = {n: b"\x01" * n for n in set(inputs)}
    seq = [bufs[n] for n in inputs]
    sha = hashlib.sha256

    def run() -> None:
        for b in seq:
            sha(b).digest()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--log-size", type=int, default=1_000_000)
    ap.add_argument("--verify", type=int, default=10_000)
    ap.add_argument("--audit", type=int, default=100_000)
    ap.add_argument("--checkpoints", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--app-audit", type=int, default=0, help="entries in the app audit (0: skip)")
    args = ap.parse_args()
    n, rng = args.log_size, random.Random(7)
    print(f"tlog bench: log of {n:,} entries, {args.rounds} rounds; load avg {os.getloadavg()}")

    t = time.perf_counter()
    entries = [entry(i) for i in range(n)]
    hashes = [leaf_hash(e) for e in entries]
    log = TiledLog(MemoryTileStorage())
    log.append(hashes)
    signer = Signer.generate(ORIGIN)
    print(f"  setup (entries, leaf hashes, tiles): {time.perf_counter() - t:.1f} s")

    # ---------------------------------------------------------------- verify (app's sync)
    mine = sorted(rng.sample(range(n), min(args.verify, n)))
    cp_bytes = Checkpoint(ORIGIN, n, log.root()).sign(signer)
    proofs = [log.inclusion_proof(i) for i in mine]
    gen = rounds(lambda: [log.inclusion_proof(i) for i in mine[:1000]], 1)[0]
    print(f"  (registry: {gen * 1000:.0f} ms per 1,000 inclusion proofs computed from tiles)")

    def verify_each() -> None:
        cp, _ = open_checkpoint(cp_bytes, signer.verifier, ORIGIN)
        for i, p in zip(mine, proofs, strict=True):
            verify_inclusion(i, cp.size, leaf_hash(entries[i]), p, cp.root)

    def verify_batch() -> None:
        cp, _ = open_checkpoint(cp_bytes, signer.verifier, ORIGIN)
        batch = InclusionBatch(cp.size, cp.root)
        for i, p in zip(mine, proofs, strict=True):
            batch.verify(i, leaf_hash(entries[i]), p)

    files = {t.path: log.storage.read_tile(t.level or 0, t.index)[: 32 * t.width] for t in
             tiles_for_size(n)}  # fmt: skip
    fetched: set[str] = set()

    def fetch(path: str) -> bytes:
        fetched.add(path)
        return files[path]

    def verify_tiles() -> None:
        fetched.clear()
        cp, _ = open_checkpoint(cp_bytes, signer.verifier, ORIGIN)
        reader = TileReader(fetch, cp.size, cp.root, cache_tiles=8192)
        for i in mine:
            reader.inclusion_proof(i, leaf_hash(entries[i]))

    def serve(need: list[tuple[int, int, int]]) -> dict[tuple[int, int, int], bytes]:
        return {(lv, ix, w): log.storage.read_tile(lv, ix)[: w * HASH_SIZE] for lv, ix, w in need}

    start = rng.randrange(0, max(1, n - len(mine)))
    dense = list(range(start, min(n, start + len(mine))))
    tile_stats: dict[str, int] = {}

    def by_tiles(which: list[int], name: str) -> Callable[[], None]:
        def run() -> None:
            cp, _ = open_checkpoint(cp_bytes, signer.verifier, ORIGIN)
            ts = TileSet(cp.size, cp.root)
            ts.ensure(which, serve)
            for i in which:
                if ts.leaf_hash_at(i) != leaf_hash(entries[i]):
                    raise AssertionError(i)
            tile_stats[name] = len(ts.added)

        return run

    inputs = [len(entries[i]) + 1 for i in mine] + [65] * sum(len(p) for p in proofs)
    base = rounds(baseline(inputs), args.rounds)
    print(f"verify: checkpoint + {len(mine):,} inclusion proofs ({len(inputs):,} hashes)")
    show("one proof at a time", rounds(verify_each, args.rounds), base, 1.0)
    show("InclusionBatch (shared nodes)", rounds(verify_batch, args.rounds), base, 1.0)
    show("proofs computed from tiles", rounds(verify_tiles, args.rounds), base)
    show("TileSet, the random sample", rounds(by_tiles(mine, "sparse"), args.rounds), base, 1.0)
    show(f"TileSet, {len(dense):,} dense leaves", rounds(by_tiles(dense, "dense"), args.rounds),
         base, 1.0)  # fmt: skip
    print(
        f"  (TileSet: {tile_stats['sparse']:,} tiles for the random sample, "
        f"{tile_stats['dense']:,} for the dense leaves)"
    )
    print(
        f"  (from tiles: {len(fetched):,} tiles fetched, "
        f"{sum(len(files[p]) for p in fetched) / 2**20:.1f} MiB, from memory here)"
    )

    # ---------------------------------------------------------------- audit (offline)
    k = args.checkpoints
    sizes = [n * (j + 1) // k for j in range(k)]
    per = args.audit // k
    stored: list[tuple[bytes, list[tuple[int, bytes, list[bytes]]]]] = []
    old = 0
    for s in sizes:
        idx = sorted(rng.sample(range(old, s), min(per, s - old)))
        src = log.source(s)
        stored.append(
            (
                Checkpoint(ORIGIN, s, src.root()).sign(signer),
                [(i, entries[i], src.inclusion_proof(i)) for i in idx],
            )
        )
        old = s
    cons = [log.consistency_proof(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]
    total = sum(len(items) for _, items in stored)

    def audit() -> None:
        prev: Checkpoint | None = None
        for (cp_data, items), j in zip(stored, range(k), strict=True):
            cp, _ = open_checkpoint(cp_data, signer.verifier, ORIGIN)
            if prev is not None:
                verify_consistency(prev.size, cp.size, prev.root, cp.root, cons[j - 1])
            batch = InclusionBatch(cp.size, cp.root)
            for i, data, p in items:
                batch.verify(i, leaf_hash(data), p)
            prev = cp

    def audit_each() -> None:
        prev: Checkpoint | None = None
        for (cp_data, items), j in zip(stored, range(k), strict=True):
            cp, _ = open_checkpoint(cp_data, signer.verifier, ORIGIN)
            if prev is not None:
                verify_consistency(prev.size, cp.size, prev.root, cp.root, cons[j - 1])
            for i, data, p in items:
                verify_inclusion(i, cp.size, leaf_hash(data), p, cp.root)
            prev = cp

    inputs = [len(d) + 1 for _, items in stored for _, d, _ in items]
    inputs += [65] * (sum(len(p) for _, items in stored for _, _, p in items))
    inputs += [65] * (2 * sum(len(c) for c in cons))
    base = rounds(baseline(inputs), args.rounds)
    print(
        f"audit: {total:,} stored entries under {k} checkpoints, {k - 1} consistency proofs "
        f"({len(inputs):,} hashes)"
    )
    show("one proof at a time", rounds(audit_each, args.rounds), base, 5.0)
    show("InclusionBatch per checkpoint", rounds(audit, args.rounds), base, 5.0)

    # the same count of entries stored the way the app stores dense entries now: their tiles
    # (verified at growing checkpoints, so partial right edges at several sizes) and leaves
    start = rng.randrange(0, max(1, n - args.audit))
    kept = list(range(start, min(n, start + args.audit)))
    tiles: dict[tuple[int, int], bytes] = {}
    tile_sizes: dict[tuple[int, int], int] = {}
    roots: dict[int, bytes] = {}
    for j in range(1, k + 1):
        upto = kept[len(kept) * j // k - 1]
        size = upto + 1 + (j < k)
        roots[size] = log.source(size).root()
        ts = TileSet(size, roots[size], tiles)
        ts.ensure(kept[len(kept) * (j - 1) // k : len(kept) * j // k], serve)
        for key, data in ts.added.items():
            if len(data) > len(tiles.get(key, b"")):
                tiles[key], tile_sizes[key] = data, size

    def audit_tiles() -> None:
        if verify_stored_tiles(tiles, tile_sizes, roots):
            raise AssertionError("stored tiles do not verify")
        for i in kept:
            t, pos = divmod(i, 256)
            if tiles[(0, t)][pos * 32 : pos * 32 + 32] != leaf_hash(entries[i]):
                raise AssertionError(i)

    inputs = [len(entries[i]) + 1 for i in kept] + [65] * len(kept)
    base = rounds(baseline(inputs), args.rounds)
    print(f"audit from stored tiles: {len(kept):,} dense entries, {len(tiles):,} stored tiles "
          f"verified at {k} checkpoint sizes ({len(inputs):,} hashes)")  # fmt: skip
    show("stored tiles + leaf hashes", rounds(audit_tiles, args.rounds), base, 5.0)

    # ---------------------------------------------------------------- append (registry)
    b = args.batch
    count = min(n, 100 * b)

    def append() -> None:
        fresh = TiledLog(MemoryTileStorage())
        for lo in range(0, count, b):
            fresh.append(hashes[lo : lo + b])
        fresh.root()

    # a leaf hash per entry is the caller's; the log hashes each node once (≈ one per leaf)
    inputs = [65] * count
    base = rounds(baseline(inputs), args.rounds)
    print(f"append: {count:,} leaves in batches of {b:,}, tiles written, root computed")
    show("TiledLog.append", rounds(append, args.rounds), base)
    if args.app_audit:
        app_audit(args.app_audit, args.rounds)
    print(f"load avg after: {os.getloadavg()}")


def app_audit(n: int, n_rounds: int) -> None:
    """`audit(ctx)` over a catalogue of n entries stored the way a sync stores them (leaf,
    index, empty proof, the events filed by day; the level-0 tiles and the right edge; a
    checkpoint and pinned key)."""
    import json
    import tempfile
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from app.services.context import ServiceContext
    from app.services.transparency import audit
    from app.services.transparency.leaves import at_z
    from app.store.rewards_models import RewardRecord
    from app.store.tlog_models import LogCheckpoint, LogLeafEvents, LogPin, LogProof, LogTile

    origin, owner = "bench.example/log", "ab" * 32
    signer = Signer.generate(origin)
    key = signer.verifier.vkey
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    records, leaves = [], []
    for i in range(n):
        at = t0 + timedelta(seconds=i)
        cid = f"c_{i % 500}"
        obj = {
            "type": "ledger", "v": 1, "id": i + 1, "kind": "contributor", "eventId": "s50000",
            "contributionId": cid, "owner": owner, "modelId": "m", "method": "influence",
            "amountMicro": 1000 + i, "at": at_z(at), "demo": False, "events": 3,
            "usageDigest": "0" * 64, "seqFrom": 0, "seqTo": 50000, "sharePpm": 700000,
        }  # fmt: skip
        leaves.append(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())
        records.append({"registry_key": key, "owner": owner, "cursor": str(i + 1),
                        "event_id": "s50000", "contribution_id": cid, "model_id": "m",
                        "method": "influence", "amount_micro": 1000 + i, "at": at,
                        "demo": False})  # fmt: skip
    log = TiledLog(MemoryTileStorage())
    log.append([leaf_hash(x) for x in leaves])
    root = log.root()
    ts = TileSet(n, root)
    ts.ensure(range(n), lambda need: {(lv, ix, w): log.storage.read_tile(lv, ix)[: w * HASH_SIZE]
                                      for lv, ix, w in need})  # fmt: skip
    ctx = ServiceContext(Path(tempfile.mkdtemp(prefix="tlog-bench-")), "http://127.0.0.1:1")
    with ctx.db.session() as s:
        s.add(LogPin(origin=origin, vkey=key, source="user"))
        s.add(LogCheckpoint(registry_key=key, size=n, root=root, prev_size=None, consistency=b"",
                            note=Checkpoint(origin, n, root).sign(signer)))  # fmt: skip
        s.execute(insert(RewardRecord), records)
        s.execute(insert(LogProof), [
            {"registry_key": key, "owner": owner, "cursor": str(i + 1), "leaf_index": i,
             "tree_size": n, "leaf": leaves[i], "proof": b""} for i in range(n)
        ])  # fmt: skip
        s.execute(insert(LogLeafEvents), [
            {"registry_key": key, "owner": owner, "contribution_id": r["contribution_id"],
             "day": r["at"].date(), "model_id": "m", "method": "influence",
             "cursor": r["cursor"], "settlement": 50000, "events": 3} for r in records
        ])  # fmt: skip
        s.execute(insert(LogTile), [
            {"registry_key": key, "level": lv, "idx": ix, "width": len(v) // HASH_SIZE,
             "tree_size": n, "data": v} for (lv, ix), v in ts.tiles.items()
        ])  # fmt: skip
        s.commit()

    def run() -> None:
        if not audit(ctx).ok:
            raise AssertionError("audit failed")

    base = rounds(baseline([len(x) + 1 for x in leaves]), n_rounds)  # the leaf hashes alone
    walls = rounds(run, n_rounds)
    print(f"app audit: {n:,} tile-verified entries, {len(ts.tiles):,} tiles, catalogue on disk")
    show("audit(ctx), offline", walls, base, 5.0)
    ctx.close()


if __name__ == "__main__":
    main()
