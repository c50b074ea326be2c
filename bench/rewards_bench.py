"""Rewards page speed: chart redraws at 100,000 points and first paint over 1M synced events.

1. A usage chart of `--series` series x `--days` days (default 140 x 730 = 102,200 points):
   each redraw after a range change (30 d, 90 d, 1 y, all, in turn), timed until the chart
   is painted, beside matplotlib's Agg backend drawing the same lines for the same ranges in
   the same run (its `canvas.draw()`). Target: < 100 ms per redraw.
2. The Rewards page's first paint with data for a catalogue holding `--events` synced usage
   events (3 attributions each, so 3x as many ledger entries) across `--contributions`
   contributions over `--days` days: the page's load (the same service calls as the GUI: the
   overview and the chart buckets), filling the page, and painting it. Target: < 1 s. The
   baseline beside it is one bare `SELECT count(*)` over the same ledger table (the least a
   page that reads the copy could do).

Each part runs `--rounds` rounds (>= 5) and prints min / median / max and the load average
(a shared host: the ratios are what the bench is for). The catalogue of part 2 is built once
per size under bench/out/ and reused.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/rewards_bench.py
     [--series 140 --days 730 --events 1000000 --contributions 500 --rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

OUT = ROOT / "bench" / "out"
DB_FILE_NAME = "catalogue.sqlite3"  # app.store.db.DB_FILE_NAME
URL = "http://bench.invalid"
OWNER = "b" * 64
MODELS = 12
METHODS = ("influence", "exact-match", "retrieval")


def _stats(name: str, times: list[float]) -> tuple[float, float, float]:
    ms = sorted(t * 1000 for t in times)
    lo, med, hi = ms[0], statistics.median(ms), ms[-1]
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(
        f"  {name:<44} min {lo:8.1f}  median {med:8.1f}  p99 {p99:8.1f}  max {hi:8.1f} ms"
        f"  (n={len(ms)})"
    )
    return lo, med, hi


def _load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


# -- 1. chart redraw ---------------------------------------------------------------------------


def _chart_data(series: int, days: int) -> tuple[list[date], list[list[int]]]:
    import numpy as np

    rng = np.random.default_rng(7)
    first = date(2024, 12, 1)
    buckets = [first + timedelta(days=d) for d in range(days)]
    trend = np.linspace(1, 4, days)
    values = [
        (rng.poisson(20 + 5 * (s % 9), days) * trend).astype(np.int64).tolist()
        for s in range(series)
    ]
    return buckets, values


def _ranges(buckets: list[date]) -> list[tuple[float, float]]:
    from app.ui.widgets.usage_charts import DAY_SECONDS, day_start

    end = day_start(buckets[-1]) + DAY_SECONDS
    start = day_start(buckets[0])
    return [(end - d * DAY_SECONDS, end) for d in (30, 90, 365)] + [(start, end)]


def bench_chart(series: int, days: int, rounds: int) -> None:
    from PySide6.QtWidgets import QApplication

    from app.ui.app import ensure_app
    from app.ui.theme import apply_theme
    from app.ui.widgets.usage_charts import Series, SeriesChart

    app = ensure_app()
    theme = apply_theme(app, "light")
    buckets, values = _chart_data(series, days)
    points = series * days
    print(f"1. chart redraw after a range change: {series} series x {days} days = {points:,}")
    chart = SeriesChart(theme, y_label="attributed events per day", value_text=str)
    chart.resize(1200, 520)
    chart.show()
    t = time.perf_counter()
    chart.set_series(buckets, [Series(f"m{n}", f"Model {n}", v) for n, v in enumerate(values)])
    chart.plot.grab()
    QApplication.processEvents()
    print(f"  first draw (set_series + paint): {(time.perf_counter() - t) * 1000:.0f} ms")
    ranges = _ranges(buckets)
    ours: list[float] = []
    ours_cpu: list[float] = []
    per_range: dict[int, list[float]] = {}
    for r in range(rounds):
        order = ranges if r % 2 == 0 else list(reversed(ranges))
        for low, high in order:
            t, c = time.perf_counter(), time.thread_time()
            chart.set_time_range(low, high)
            chart.plot.grab()  # paints the view synchronously, as the screen would
            wall, cpu = time.perf_counter() - t, time.thread_time() - c
            if r > 0:  # the first round warms caches; every later one counts
                ours.append(wall)
                ours_cpu.append(cpu)
                per_range.setdefault(round((high - low) / 86_400), []).append(wall)
    _, med_ours, _ = _stats("QPainter (ours): range change + paint, wall", ours)
    _stats("QPainter (ours): the same, CPU of the GUI thread", ours_cpu)
    print(f"  {_load()}")
    print(
        "  median wall per range: "
        + ", ".join(f"{d} d {statistics.median(v) * 1000:.0f} ms" for d, v in per_range.items())
    )
    chart.close()

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  matplotlib not installed (dev extra): no baseline in this run")
        return
    import numpy as np

    from app.ui.widgets.usage_charts import DAY_SECONDS, day_start

    xs = np.array([day_start(d) + DAY_SECONDS / 2 for d in buckets])
    fig, ax = plt.subplots(figsize=(12, 5.2), dpi=100)
    for v in values:
        ax.plot(xs, v, linewidth=1.2)
    ax.set_ylabel("attributed events per day")
    fig.canvas.draw()
    theirs: list[float] = []
    theirs_cpu: list[float] = []
    for r in range(rounds):
        order = ranges if r % 2 == 0 else list(reversed(ranges))
        for low, high in order:
            t, c = time.perf_counter(), time.thread_time()
            ax.set_xlim(low, high)
            fig.canvas.draw()
            if r > 0:
                theirs.append(time.perf_counter() - t)
                theirs_cpu.append(time.thread_time() - c)
    _, med_theirs, _ = _stats("matplotlib Agg: set_xlim + canvas.draw(), wall", theirs)
    _stats("matplotlib Agg: the same, CPU", theirs_cpu)
    plt.close(fig)
    print(
        f"  ours / matplotlib Agg (median): {med_ours / med_theirs:.2f}x   "
        f"target < 100 ms per redraw: median {med_ours:.0f} ms wall, "
        f"{statistics.median(ours_cpu) * 1000:.0f} ms CPU, max {max(ours) * 1000:.0f} ms wall"
    )


# -- 2. first paint over 1M synced events -------------------------------------------------------


def _build_catalogue(data_dir: Path, events: int, contributions: int, days: int) -> None:
    """A catalogue whose rewards copy holds `events` events' ledger entries and usage days,
    written straight into SQLite (what a sync would have stored)."""
    import numpy as np

    from app.services.context import ServiceContext
    from app.store.rewards_models import url_key

    ctx = ServiceContext(data_dir, URL)
    with ctx.db.session():
        pass  # migrations
    ctx.close()
    key = url_key(URL)
    rng = np.random.default_rng(11)
    n = events * 3
    first = date.today() - timedelta(days=days - 1)
    day = rng.integers(0, days, events).repeat(3)
    secs = rng.integers(0, 86_400, events).repeat(3)
    contrib = rng.integers(0, contributions, n)
    model = rng.integers(0, MODELS, events).repeat(3)
    method = rng.integers(0, 3, n)
    amount = rng.integers(1, 5_000, n)
    share = np.tile(np.array([500_000, 300_000, 200_000]), events)
    epoch = datetime.combine(first, datetime.min.time(), UTC).timestamp()
    con = sqlite3.connect(data_dir / DB_FILE_NAME)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    scope = con.execute(
        "INSERT INTO ledger_scopes (registry_key, owner) VALUES (?, ?) RETURNING id", (key, OWNER)
    ).fetchone()[0]
    stamps = (epoch + day * 86_400 + secs).tolist()
    cids = [f"c{c:05d}" for c in range(contributions)]
    mids = [f"model-{m:03d}" for m in range(MODELS)]

    def ledger_rows() -> object:
        for i in range(n):
            at = datetime.fromtimestamp(stamps[i], UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
            yield (
                scope,
                str(i + 1),
                f"e{i // 3}",
                cids[int(contrib[i])],
                mids[int(model[i])],
                METHODS[int(method[i])],
                int(amount[i]),
                at,
                0,
            )

    con.executemany(
        "INSERT INTO reward_entries (scope, cursor, event_id, contribution_id,"
        " model_id, method, amount_micro, at, demo) VALUES (?,?,?,?,?,?,?,?,?)",
        ledger_rows(),
    )
    bucket = ((day * contributions + contrib) * MODELS + model) * 3 + method
    keys, inverse = np.unique(bucket, return_inverse=True)
    ev = np.bincount(inverse)
    sh = np.bincount(inverse, weights=share).astype(np.int64)
    rw = np.bincount(inverse, weights=amount).astype(np.int64)
    rows = []
    for k, e, s_, r in zip(keys.tolist(), ev.tolist(), sh.tolist(), rw.tolist(), strict=True):
        k, m_ = divmod(k, 3)
        k, mo = divmod(k, MODELS)
        d, c = divmod(k, contributions)
        rows.append(
            (key, cids[c], (first + timedelta(days=d)).isoformat(), mids[mo], METHODS[m_], e, s_, r)
        )
    con.executemany(
        "INSERT INTO usage_days (registry_key, contribution_id, day, model_id, method, events,"
        " share_ppm, reward_micro) VALUES (?,?,?,?,?,?,?,?)",
        rows,
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
    con.executemany(
        "INSERT INTO sync_cursors (registry_key, owner, stream, cursor, synced_at)"
        " VALUES (?,?,?,?,?)",
        [(key, OWNER, "rewards", str(n), now)]
        + [(key, OWNER, f"usage:{c}", date.today().isoformat(), now) for c in cids],
    )
    con.executemany(
        "INSERT INTO registry_models (registry_key, id, name, description, demo)"
        " VALUES (?,?,?,?,0)",
        [(key, m, f"Model {m[-3:]}", "") for m in mids],
    )
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    from app.store.rollups import rebuild

    ctx = ServiceContext(data_dir, URL)  # the rollups a sync would have kept beside the rows
    with ctx.db.session() as s:
        rebuild(s, key)
        s.commit()
    ctx.close()
    print(f"  built: {n:,} ledger entries, {len(rows):,} usage days")


def bench_first_paint(events: int, contributions: int, days: int, rounds: int) -> None:
    from PySide6.QtWidgets import QApplication

    from app.services.context import ServiceContext
    from app.services.rewards import open_review
    from app.services.usage_history import usage_data
    from app.ui.adapters.rewards_adapter import with_usage
    from app.ui.app import ensure_app
    from app.ui.pages.rewards_view import RewardsView
    from app.ui.theme import apply_theme

    print(
        f"2. Rewards page first paint: {events:,} synced events x 3 attributions, "
        f"{contributions} contributions, {days} days"
    )
    source = OUT / f"rewards-{events}-{contributions}-{days}"
    if not (source / DB_FILE_NAME).exists():
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        t = time.perf_counter()
        _build_catalogue(source, events, contributions, days)
        print(f"  catalogue built in {time.perf_counter() - t:.1f} s (kept in {source})")
    app = ensure_app()
    theme = apply_theme(app, "light")

    ctx = ServiceContext(source, URL)  # a catalogue built before the rollups: migrated
    ctx.close()  # (and its rollups filled) once here, not timed

    def load() -> object:
        ctx = ServiceContext(source, URL)
        try:
            review = open_review(ctx, OWNER, url=URL)
            return with_usage(review.overview(), usage_data(review))
        finally:
            ctx.close()

    loads: list[float] = []
    paints: list[float] = []
    totals: list[float] = []
    baseline: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        page = load()
        t1 = time.perf_counter()
        view = RewardsView(theme)
        view.resize(1410, 930)
        view.show()
        view.show_overview(page)  # type: ignore[arg-type]
        view.grab()
        QApplication.processEvents()
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        paints.append(t2 - t1)
        totals.append(t2 - t0)
        view.close()
        view.deleteLater()
        QApplication.processEvents()
        t = time.perf_counter()
        con = sqlite3.connect(source / DB_FILE_NAME)
        con.execute("SELECT count(*) FROM reward_entries").fetchone()
        con.close()
        baseline.append(time.perf_counter() - t)
    _stats("load (overview + chart buckets)", loads)
    _stats("fill + paint the page", paints)
    _, med, _ = _stats("first paint with data (total)", totals)
    _, base, _ = _stats("baseline: SELECT count(*) over the ledger", baseline)
    print(
        f"  total / baseline (median): {med / base:.1f}x   target < 1 s: "
        f"{'met' if max(totals) < 1 else 'NOT met'} (max {max(totals):.2f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=140)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--contributions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redraw-rounds", type=int, default=50, help="x4 ranges per round")
    parser.add_argument("--skip-chart", action="store_true")
    parser.add_argument("--skip-page", action="store_true")
    args = parser.parse_args(argv)
    rounds = max(5, args.rounds) if args.rounds >= 5 else args.rounds
    print(f"rewards bench: {_load()}")
    if not args.skip_chart:
        bench_chart(args.series, args.days, args.redraw_rounds + 1)
    if not args.skip_page:
        bench_first_paint(args.events, args.contributions, args.days, rounds)
    print(f"after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
