"""Cold start until the catalogue's rows are visible, against an empty QMainWindow baseline.

Each run is a fresh process (offscreen Qt). The clock runs from spawning the process until the
catalogue table paints with rows in it (the app is usable); the time of the window's first
paint is reported from the same run. The median of 5 runs is taken. Catalogues of 10,000 and
100,000 items are inserted directly through app.store for setup speed. Targets, judged on the
time until rows are visible: ≤ 5× the baseline at 10,000 items, ≤ 8× at 100,000; peak RSS
< 250 MB.

    .venv/bin/python bench/gui_startup_bench.py [--runs 5] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PAINT_PROBE = """
import sys
from PySide6.QtCore import QEvent, QObject
def _peak_rss_mb():
    # VmHWM, not ru_maxrss: the latter can carry the forking parent's peak across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
class _Painted(QObject):
    # The baseline's end: its first paint.
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            rss = _peak_rss_mb()
            sys.stdout.write(f"rows {rss}\\n"); sys.stdout.flush()
            import os; os._exit(0)
        return False
"""

BASELINE = (
    PAINT_PROBE
    + """
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow(); w.resize(1280, 800)
probe = _Painted(); w.installEventFilter(probe)
w.show()
app.exec()
"""
)

APP = (
    PAINT_PROBE
    + """
from pathlib import Path
from app.services.context import ServiceContext
from app.ui.app import GuiSession, ensure_app
class _FirstPaint(QObject):
    # The window's first paint: reported, then the run goes on until rows are visible.
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            sys.stdout.write("painted\\n"); sys.stdout.flush()
            obj.removeEventFilter(self)
        return False
class _RowsPainted(_Painted):
    # The table's viewport painted with catalogue rows in it: the catalogue is usable.
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and w.catalogue.model.rowCount() > 0:
            return super().eventFilter(obj, event)
        return False
app = ensure_app()
ctx = ServiceContext(Path(sys.argv[1]), registry_url="http://127.0.0.1:9")
session = GuiSession(ctx, app, debug=False)
w = session.build_window()
first = _FirstPaint(); w.installEventFilter(first)
probe = _RowsPainted(); w.catalogue.table.viewport().installEventFilter(probe)
w.show()
app.exec()
"""
)


def populate(data_dir: Path, count: int) -> None:
    """Insert `count` plausible items in one transaction (annotation sets every 10th)."""
    from sqlalchemy import insert

    from app.store.db import Database
    from app.store.models import Item

    db = Database(data_dir)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    formats = ["csv", "parquet", "coco", "jsonl", "images", "yolo-ultralytics"]
    rows = []
    for i in range(1, count + 1):
        is_annotation = i % 10 == 0
        rows.append(
            {
                "id": i,
                "kind": "annotation" if is_annotation else "dataset",
                "title": f"{'Labels' if is_annotation else 'Dataset'} {i:06d}",
                "license": "CC-BY-4.0",
                "parent_id": i - 1 if is_annotation else None,
                "source_path": f"/data/set-{i}",
                "source_names": [f"set-{i}"],
                "format": formats[i % len(formats)],
                "report": {},
                "problems": [],
                "record_count": i * 7 % 100_000,
                "file_count": 1 + i % 50,
                "total_size": i * 1_234_567 % 10_000_000_000,
                "manifest_root": f"{i:064x}",
                "manifest_digest": f"{i:064x}",
                "state": "draft",
                "rejection_reasons": [],
                "created_at": start + timedelta(minutes=i),
                "updated_at": start + timedelta(minutes=i),
            }
        )
    with db.session() as s:
        for chunk in range(0, len(rows), 20_000):
            s.execute(insert(Item), rows[chunk : chunk + 20_000])
    db.dispose()


def run_once(code: str, *args: str) -> tuple[float, float, int]:
    """(seconds to the first paint, seconds until rows are visible, peak RSS in MB)."""
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"  # never the user's keyring
    env["PYTHONPATH"] = str(ROOT)
    # Like an installed app: bytecode is cached after the warm-up run, not recompiled each time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    painted = None
    line = proc.stdout.readline()
    if line.startswith("painted"):
        painted = time.perf_counter() - started
        line = proc.stdout.readline()
    rows = time.perf_counter() - started
    proc.wait(timeout=60)
    if not line.startswith("rows"):
        raise RuntimeError(f"child did not show its rows (exit {proc.returncode})")
    return painted if painted is not None else rows, rows, int(line.split()[1])


def measure(label: str, runs: int, code: str, *args: str) -> tuple[float, float, int]:
    """Medians of (first paint, rows visible) and the peak RSS over `runs` fresh processes."""
    run_once(code, *args)  # warm the OS file cache and .pyc files: "cold" = new process
    firsts, times, rss = [], [], []
    for _ in range(runs):
        f, t, r = run_once(code, *args)
        firsts.append(f)
        times.append(t)
        rss.append(r)
    median = statistics.median(times)
    print(
        f"  {label:<32} median {median:6.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times)})"
        f"   peak RSS {max(rss)} MB"
    )
    return statistics.median(firsts), median, max(rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    targets = {10_000: 5.0, 100_000: 8.0}
    print(f"GUI cold start until the catalogue rows are visible, median of {args.runs} (offscreen)")
    _first, baseline, base_rss = measure("empty QMainWindow, first paint", args.runs, BASELINE)
    ok = True
    with tempfile.TemporaryDirectory(prefix="gui-bench-") as tmp:
        for size in sizes:
            data_dir = Path(tmp) / f"data-{size}"
            data_dir.mkdir()
            populate(data_dir, size)
            first, rows_t, rss = measure(
                f"Contributor Desk, {size:,} items, rows", args.runs, APP, str(data_dir)
            )
            ratio = rows_t / baseline
            target = targets.get(size, 8.0)
            verdict = "ok" if ratio <= target and rss < 250 else "OVER TARGET"
            ok = ok and verdict == "ok"
            print(
                f"    rows visible {ratio:.2f}x the baseline (target <= {target:.0f}x; first paint "
                f"{first / baseline:.2f}x, not judged); peak RSS {rss} MB (target < 250 MB): "
                f"{verdict}"
            )
    print(f"  baseline RSS {base_rss} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
