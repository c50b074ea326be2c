"""GET /v1/me/rewards/{entryId}/events per call, on a filled registry database.

Calls the route's function (`registry.routes.reads.my_entry_events`) in-process on `--db` (a
registry SQLite file, e.g. the one bench/usage_sync_bench.py builds under bench/out/), for
`--entries` contributor entries spread over the ledger: the first page (limit 500), then every
page of the same entry with `after` and `--limit`. Prints wall and CPU time per call and the SQL
statements per call (the machine may be loaded: CPU and statement counts compare better than
wall times).

Run: .venv/bin/python bench/entry_events_bench.py
     --db bench/out/sync-1000000-500-2-30/registry.sqlite3 [--entries 20 --limit 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from sqlalchemy import event, func, select

    from registry.auth import Principal
    from registry.db.session import make_engine, make_sessionmaker
    from registry.db.usage_models import LedgerEntry
    from registry.routes.reads import my_entry_events

    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--entries", type=int, default=20)
    p.add_argument("--limit", type=int, default=10)
    args = p.parse_args()
    engine = make_engine(f"sqlite:///{Path(args.db).resolve()}")
    statements = [0]
    event.listen(
        engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1)
    )
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        n = s.scalar(select(func.max(LedgerEntry.id))) or 0
        step = max(1, n // (args.entries * 2))
        picked = s.execute(
            select(LedgerEntry.id, LedgerEntry.owner_fingerprint)
            .where(LedgerEntry.kind == "contributor", LedgerEntry.seq_from.is_not(None))
            .where(LedgerEntry.id % step == 0)
            .limit(args.entries)
        ).all()

    def timed(
        entry_id: int, who: Principal, after: str | None, limit: int
    ) -> tuple[float, float, int, object]:
        with sessions() as s:
            statements[0] = 0
            w, c = time.perf_counter(), time.process_time()
            page = my_entry_events(s, who, str(entry_id), after, limit)
            return time.perf_counter() - w, time.process_time() - c, statements[0], page

    first: list[tuple[float, float, int]] = []
    paged: list[tuple[float, float, int]] = []
    for entry_id, owner in picked:
        who = Principal(owner or "", "", "contributor")
        w, c, q, page = timed(entry_id, who, None, 500)
        first.append((w, c, q))
        after = None
        while True:
            w, c, q, page = timed(entry_id, who, after, args.limit)
            paged.append((w, c, q))
            if not page.hasMore:  # type: ignore[attr-defined]
                break
            after = page.nextCursor  # type: ignore[attr-defined]
    for name, rows in (
        ("first page (limit 500)", first),
        (f"every page (limit {args.limit})", paged),
    ):
        print(
            f"{name:<24} calls {len(rows):4}"
            f"  wall median {statistics.median(r[0] for r in rows) * 1000:7.1f} ms"
            f"  cpu median {statistics.median(r[1] for r in rows) * 1000:7.1f} ms"
            f"  statements/call {statistics.mean(r[2] for r in rows):.1f}"
        )


if __name__ == "__main__":
    main()
