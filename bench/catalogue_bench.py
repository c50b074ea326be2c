"""Catalogue speed and memory.

1. `contributor-desk list --json` with 100,000 catalogued files (1,000 items x 100 files),
   against a baseline run in the same process group: `python3 -c "import json, sqlite3"`
   (the interpreter start every CLI call pays) — target: under 1 s absolute.
2. Peak RSS of `contributor-desk add` on a 1,000,000-row CSV (target < 200 MB), and its wall
   time against `wc -l` + `sha256sum` of the same file (the I/O a streaming add cannot avoid).

Run: .venv/bin/python bench/catalogue_bench.py [--items 1000 --files-per-item 100 --rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(cmd: list[str], env: dict[str, str], runs: int = 5) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user+sys) of the child.

    CPU time is what the command costs on an idle machine; wall time on this shared 2-core
    host also contains waiting for other jobs.
    """
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def _child_peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run cmd in a fresh child; return (wall seconds, peak RSS MB) of that child alone."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        f"subprocess.run({cmd!r}, check=True, stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def seed_catalogue(data_dir: Path, items: int, files_per_item: int) -> None:
    from sqlalchemy import insert

    from app.store.db import Database
    from app.store.models import FileEntry, HistoryEntry, Item

    db = Database(data_dir)
    now = datetime.now(UTC)
    rnd = random.Random(1)
    with db.session() as s:
        s.execute(
            insert(Item),
            [
                {
                    "id": i,
                    "kind": "dataset",
                    "title": f"Dataset {i}",
                    "source_path": f"/data/{i}",
                    "source_names": [str(i)],
                    "format": "csv",
                    "report": {},
                    "problems": [],
                    "record_count": 1000,
                    "file_count": files_per_item,
                    "total_size": files_per_item * 4096,
                    "manifest_root": f"{i:064x}",
                    "manifest_digest": f"{i:064x}",
                    "state": "draft",
                    "rejection_reasons": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(1, items + 1)
            ],
        )
        s.execute(
            insert(FileEntry),
            [
                {
                    "item_id": i,
                    "path": f"part-{j:05}.csv",
                    "size": 4096,
                    "sha256": f"{rnd.getrandbits(256):064x}",
                    "mtime_ns": 0,
                }
                for i in range(1, items + 1)
                for j in range(files_per_item)
            ],
        )
        s.execute(
            insert(HistoryEntry),
            [
                {"item_id": i, "to_state": "draft", "event": "added", "detail": "", "at": now}
                for i in range(1, items + 1)
            ],
        )
    db.dispose()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--files-per-item", type=int, default=100)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    cli = [sys.executable, "-m", "app"]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        base, base_cpu = _timed([sys.executable, "-c", "import json, sqlite3"], env)
        shapes = [(args.items, args.files_per_item), (args.items * args.files_per_item, 1)]
        for n, (items, per_item) in enumerate(shapes):
            data_dir = Path(tmp) / f"data{n}"
            seed_catalogue(data_dir, items, per_item)
            env["CONTRIBUTOR_DESK_DATA_DIR"] = str(data_dir)
            ours, ours_cpu = _timed([*cli, "list", "--json"], env)
            files = items * per_item
            print(
                f"list --json, {items:,} items / {files:,} files: "
                f"{ours * 1000:.0f} ms (median of 5)"
            )
            print(f"  CPU time {ours_cpu * 1000:.0f} ms (what an idle machine would take)")
            print(
                f"  baseline python3 start: {base * 1000:.0f} ms wall, {base_cpu * 1000:.0f} ms "
                f"CPU; ratio {ours / base:.1f}x wall, {ours_cpu / base_cpu:.1f}x CPU"
            )
            # The target is wall time, what the user waits for; CPU time above is only context.
            print(f"  target < 1000 ms wall: {'PASS' if ours < 1.0 else 'FAIL'}")

        big = Path(tmp) / "rows" / "big.csv"
        big.parent.mkdir()
        with big.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "name", "value", "flag"])
            for i in range(args.rows):
                w.writerow([i, f"name-{i}", i * 0.5, i % 2 == 0])
        size_mb = big.stat().st_size / 1e6
        wall, rss = _child_peak_rss_mb([*cli, "add", str(big.parent)], env)
        base_wall, base_rss = _child_peak_rss_mb(
            ["sh", "-c", f"wc -l {big} && sha256sum {big}"], env
        )
        print(
            f"add of a {args.rows:,}-row CSV ({size_mb:.0f} MB): "
            f"{wall:.2f} s, peak RSS {rss:.0f} MB"
        )
        print(f"  baseline wc -l + sha256sum: {base_wall:.2f} s; ratio {wall / base_wall:.1f}x")
        print(f"  target RSS < 200 MB: {'PASS' if rss < 200 else 'FAIL'}")
        del base_rss
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
