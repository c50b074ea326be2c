"""Evidence check of exact-match spans against local files, beside plain reads of the same
spans and `dd`, in the same run.

Builds (or reuses) ~1 GB of local files in bench/out/evidence-tree (text and binary, 8-128 MiB
each), their catalogued facts (size, mtime, SHA-256: hashed once, cached in a marker file) and
10,000 exact-match claims at random offsets (64 B-4 KiB spans, in random order as events come).
The page cache is warmed first, so every contender reads from RAM. Then, in alternating rounds:

  ours         app.services.evidence_check.LocalChecker: stat of each file (the unchanged
               fast path), one positioned read and a SHA-256 per span
  plain-open   for each span: open, seek, read, close (what a script would do; no hashing)
  plain-pread  one descriptor per file, os.pread per span (the leanest read; no hashing)
  pread+sha256 the same, and each span hashed and compared (the check alone, without the
               catalogue lookup, the unchanged-file fast path or any status)
  dd           `dd skip_bytes,count_bytes` per span for a sample of --dd-sample spans,
               extrapolated to all spans (one process per span)

Prints min / median / max seconds per contender and the ratio of ours to each (speed of ours
relative to the baseline: baseline time / our time; target >= 0.5), with the load average.

With --view it also times the listing the Evidence view and `contributor-desk evidence` show
(a throwaway catalogue holding the files and one confirmed event per span).

Usage: .venv/bin/python bench/evidence_bench.py [--size-gb 1] [--spans 10000] [--rounds 5] [--view]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from app.services.evidence_check import Claim, LocalChecker, LocalFile, Status  # noqa: E402

MiB = 1024 * 1024
MARKER = ".evidence-tree.json"
WORDS = (
    "the sea is calm tonight tide full moon lies fair upon straits french coast light gleams "
    "gone cliffs england stand glimmering vast out in tranquil bay come to window sweet night air"
).split()


def build_tree(root: Path, size_gb: float, seed: int = 7) -> list[LocalFile]:
    """Text and binary files adding up to size_gb; their catalogued facts (reused when the
    marker matches the files on disk)."""
    spec = {"sizeGb": size_gb, "seed": seed, "version": 1}
    marker = root / MARKER
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved["spec"] == spec:
            files = [LocalFile(**f) for f in saved["files"]]
            if all(_same(f) for f in files):
                return files
    root.mkdir(parents=True, exist_ok=True)
    for p in root.iterdir():
        if p.name != MARKER:
            p.unlink()
    rng = random.Random(seed)
    total, written, i = int(size_gb * 1024 * MiB), 0, 0
    line_block = "".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 16))) + "\n"
        for _ in range(20_000)
    ).encode()
    while written < total:
        size = min(rng.randrange(8 * MiB, 128 * MiB), total - written)
        text = i % 2 == 0
        path = root / (f"corpus-{i:03d}.txt" if text else f"shard-{i:03d}.bin")
        with path.open("wb") as fh:
            left = size
            while left:
                chunk = line_block if text else os.urandom(4 * MiB)
                fh.write(chunk[:left])
                left -= min(left, len(chunk))
        written += size
        i += 1
    files = []
    for p in sorted(root.iterdir()):
        if p.name == MARKER:
            continue
        st = p.stat()
        h = hashlib.sha256()
        with p.open("rb") as fh:
            while block := fh.read(4 * MiB):
                h.update(block)
        files.append(LocalFile(str(p), st.st_size, h.hexdigest(), st.st_mtime_ns))
    marker.write_text(json.dumps({"spec": spec, "files": [f.__dict__ if hasattr(f, "__dict__")
                      else _as_dict(f) for f in files]}))  # fmt: skip
    return files


def _as_dict(f: LocalFile) -> dict[str, object]:
    return {"path": f.path, "size": f.size, "sha256": f.sha256, "mtime_ns": f.mtime_ns}


def _same(f: LocalFile) -> bool:
    try:
        st = os.stat(f.path)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (f.size, f.mtime_ns)


def make_claims(files: list[LocalFile], n: int, seed: int = 11) -> list[tuple[LocalFile, Claim]]:
    rng = random.Random(seed)
    out = []
    weights = [f.size for f in files]
    fds = {f.path: os.open(f.path, os.O_RDONLY) for f in files}
    try:
        for f in rng.choices(files, weights=weights, k=n):
            length = rng.randrange(64, 4097)
            offset = rng.randrange(0, f.size - length)
            span = os.pread(fds[f.path], length, offset)
            out.append((f, Claim(f.sha256, offset, length, hashlib.sha256(span).hexdigest())))
    finally:
        for fd in fds.values():
            os.close(fd)
    return out


def warm(files: list[LocalFile]) -> None:
    for f in files:
        with open(f.path, "rb") as fh:
            while fh.read(8 * MiB):
                pass


def ours(files: list[LocalFile], claims: list[tuple[LocalFile, Claim]]) -> int:
    with LocalChecker.of(files) as checker:
        ok = sum(checker.check(c) is Status.VERIFIED for _f, c in claims)
    assert ok == len(claims), f"{len(claims) - ok} spans did not verify"
    return ok


def plain_open(_files: list[LocalFile], claims: list[tuple[LocalFile, Claim]]) -> int:
    n = 0
    for f, c in claims:
        with open(f.path, "rb") as fh:
            fh.seek(int(c.offset or 0))
            n += len(fh.read(int(c.length or 0)))
    return n


def plain_pread(files: list[LocalFile], claims: list[tuple[LocalFile, Claim]]) -> int:
    fds = {f.path: os.open(f.path, os.O_RDONLY) for f in files}
    try:
        return sum(len(os.pread(fds[f.path], int(c.length or 0), int(c.offset or 0)))
                   for f, c in claims)  # fmt: skip
    finally:
        for fd in fds.values():
            os.close(fd)


def pread_sha256(files: list[LocalFile], claims: list[tuple[LocalFile, Claim]]) -> int:
    fds = {f.path: os.open(f.path, os.O_RDONLY) for f in files}
    sha = hashlib.sha256
    try:
        return sum(
            sha(os.pread(fds[f.path], int(c.length or 0), int(c.offset or 0))).hexdigest()
            == c.span_sha256
            for f, c in claims
        )
    finally:
        for fd in fds.values():
            os.close(fd)


def dd_sample(claims: list[tuple[LocalFile, Claim]], sample: int) -> float:
    """Seconds for `sample` spans read by dd, one process per span, scaled to all spans."""
    picked = claims[:: max(1, len(claims) // sample)][:sample]
    t = time.perf_counter()
    for f, c in picked:
        subprocess.run(
            ["dd", f"if={f.path}", "of=/dev/null", "iflag=skip_bytes,count_bytes",
             f"skip={c.offset}", f"count={c.length}", f"bs={c.length}", "status=none"],
            check=True,
        )  # fmt: skip
    return (time.perf_counter() - t) * len(claims) / len(picked)


def view_rounds(
    files: list[LocalFile], claims: list[tuple[LocalFile, Claim]], rounds: int, root: Path
) -> list[float]:
    """Seconds per `listing` (what the Evidence view and `contributor-desk evidence` run) of
    one contribution holding the files, with one confirmed event per claim: every span
    re-checked, the text spans read with their line, statuses compared with the stored ones."""
    import shutil
    import tempfile
    from datetime import UTC, datetime

    from app.services.context import ServiceContext
    from app.services.evidence_review import listing
    from app.store.evidence_models import EvidenceEvent
    from app.store.models import FileEntry, Item

    tmp = Path(tempfile.mkdtemp(prefix="evidence-view-"))
    ctx = ServiceContext(tmp, "http://127.0.0.1:9")
    try:
        with ctx.db.session() as s:
            item = Item(kind="dataset", title="corpus", source_path=str(root),
                        registry_id="c_bench", state="accepted")  # fmt: skip
            s.add(item)
            s.flush()
            s.add_all(
                FileEntry(item_id=item.id, path=Path(f.path).name, size=f.size,
                          sha256=f.sha256, mtime_ns=f.mtime_ns)
                for f in files
            )  # fmt: skip
            now = datetime.now(UTC)
            s.bulk_insert_mappings(
                EvidenceEvent,  # type: ignore[arg-type]
                [
                    {"registry_key": "bench", "owner": "o", "cursor": str(i // 8),
                     "sequence": i, "contribution_id": "c_bench", "event_id": f"e{i}",
                     "model_id": "m", "method": "exact-match", "at": now, "fee_micro": 1,
                     "weight_ppm": 1, "amount_micro": 1, "digest": "", "attributions_json": "",
                     "file_sha256": c.file_sha256, "offset": c.offset, "length": c.length,
                     "span_sha256": c.span_sha256, "confirmed": True, "status": "verified",
                     "checked_at": now}
                    for i, (_f, c) in enumerate(claims)
                ],
            )  # fmt: skip
            s.commit()
        out = []
        for _ in range(rounds):
            t = time.perf_counter()
            view = listing(ctx, "bench", "o", "c_bench")
            out.append(time.perf_counter() - t)
            assert len(view.rows) == len(claims), len(view.rows)
            assert view.counts.get(Status.VERIFIED) == len(claims), view.counts
        return out
    finally:
        ctx.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--spans", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dd-sample", type=int, default=200)
    ap.add_argument("--view", action="store_true", help="also time the Evidence view's listing")
    ap.add_argument("--dir", type=Path, default=HERE / "out" / "evidence-tree")
    args = ap.parse_args()
    t = time.perf_counter()
    files = build_tree(args.dir, args.size_gb)
    claims = make_claims(files, args.spans)
    warm(files)
    total = sum(f.size for f in files)
    print(f"{len(files)} files, {total / MiB:,.0f} MiB, {len(claims):,} spans "
          f"(setup {time.perf_counter() - t:.1f} s)")  # fmt: skip
    contenders: dict[str, Callable[[], object]] = {
        "ours": lambda: ours(files, claims),
        "plain-open": lambda: plain_open(files, claims),
        "plain-pread": lambda: plain_pread(files, claims),
        "pread+sha256": lambda: pread_sha256(files, claims),
    }
    times: dict[str, list[float]] = {k: [] for k in [*contenders, "dd"]}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        order = list(contenders)
        if r % 2:
            order.reverse()
        for name in order:
            t = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t)
        times["dd"].append(dd_sample(claims, args.dd_sample))
    load_after = os.getloadavg()
    print(f"{args.rounds} rounds; load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f}")  # fmt: skip
    mine = statistics.median(times["ours"])
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = "" if name == "ours" else f"   ours at {med / mine:.2f}x its speed"
        note = f" (extrapolated from {args.dd_sample} spans)" if name == "dd" else ""
        print(f"  {name:<12} min {min(ts):.3f} s  median {med:.3f} s  max {max(ts):.3f} s"
              f"{ratio}{note}")  # fmt: skip
    print(f"  ours: {len(claims) / mine:,.0f} spans/s (median)")
    if args.view:
        ts = view_rounds(files, claims, args.rounds, args.dir)
        print(f"  view listing (re-check, span text, lines) min {min(ts):.3f} s  median "
              f"{statistics.median(ts):.3f} s  max {max(ts):.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
