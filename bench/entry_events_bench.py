"""GET /v1/me/rewards/{entryId}/events per call, on a filled registry database.

Calls the route's function (`registry.routes.reads.my_entry_events`) in-process on `--db` (a
registry SQLite file, e.g. the one bench/usage_sync_bench.py builds under bench/out/), for
`--entries` contributor entries spread over the ledger: the first page (limit 500), then every
page of the same entry with `after` and `--limit`. Two contenders in alternating order over
`--rounds` rounds: the database as it is (entries found by their paid positions,
paid_attributions) and a copy of it without those rows (every entry listed from the usage log
alone, as for entries settled before migration 0015: the baseline). Prints, per contender, the
wall and CPU time per call (min / median / max of the rounds' medians), the SQL statements per
call and the load average, and checks that both list the same events.

Run: .venv/bin/python bench/entry_events_bench.py
     --db bench/out/sync-1000000-500-2-30/registry.sqlite3 [--entries 20 --limit 10 --rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Call = tuple[float, float, int]  # wall s, CPU s, statements


def _log_only_copy(db: Path) -> Path:
    """A copy of `db` without paid positions (made once per source file, under bench/out/)."""
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    copy = out / f"entry-events-log-only-{db.stat().st_size}.sqlite3"
    if not copy.exists():
        src = sqlite3.connect(db)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        dst.execute("DELETE FROM paid_attributions")
        dst.commit()
        dst.execute("VACUUM")
        dst.close()
    return copy


def main() -> None:
    from sqlalchemy import event, func, select

    from registry.auth import Principal
    from registry.db.session import make_engine, make_sessionmaker
    from registry.db.usage_models import LedgerEntry, PaidAttribution
    from registry.routes.reads import my_entry_events

    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--entries", type=int, default=20)
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    db = Path(args.db).resolve()
    statements = [0]
    contenders: dict[str, Any] = {}
    for name, path in (("paid positions", db), ("usage log only", _log_only_copy(db))):
        engine = make_engine(f"sqlite:///{path}")
        event.listen(
            engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1)
        )
        contenders[name] = make_sessionmaker(engine)
    sessions = contenders["paid positions"]
    with sessions() as s:
        if not s.scalar(select(func.count()).select_from(PaidAttribution)):
            sys.exit(f"{db} has no paid positions: settled before migration 0015 (rebuild it)")
        n = s.scalar(select(func.max(LedgerEntry.id))) or 0
        step = max(1, n // (args.entries * 2))
        picked = s.execute(
            select(LedgerEntry.id, LedgerEntry.owner_fingerprint)
            .where(LedgerEntry.kind == "contributor", LedgerEntry.seq_from.is_not(None))
            .where(LedgerEntry.id % step == 0)
            .limit(args.entries)
        ).all()

    def timed(
        sessions: Any, entry_id: int, who: Principal, after: str | None, limit: int
    ) -> tuple[Call, Any]:
        with sessions() as s:
            statements[0] = 0
            w, c = time.perf_counter(), time.process_time()
            page = my_entry_events(s, who, str(entry_id), after, limit)
            return (time.perf_counter() - w, time.process_time() - c, statements[0]), page

    def one_round(sessions: Any) -> tuple[list[Call], list[Call], list[list[str]]]:
        first: list[Call] = []
        paged: list[Call] = []
        listed: list[list[str]] = []
        for entry_id, owner in picked:
            who = Principal(owner or "", "", "contributor")
            call, page = timed(sessions, entry_id, who, None, 500)
            first.append(call)
            ids: list[str] = []
            after = None
            while True:
                call, page = timed(sessions, entry_id, who, after, args.limit)
                paged.append(call)
                ids += [x.eventId for x in page.items]
                if not page.hasMore:
                    break
                after = page.nextCursor
            listed.append(ids)
        return first, paged, listed

    results: dict[str, dict[str, list[list[Call]]]] = {
        name: {"first": [], "paged": []} for name in contenders
    }
    lists: dict[str, list[list[str]]] = {}
    names = list(contenders)
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else names[::-1]:
            first, paged, listed = one_round(contenders[name])
            results[name]["first"].append(first)
            results[name]["paged"].append(paged)
            if lists.setdefault(name, listed) != listed:
                sys.exit(f"{name}: another list of events in round {rnd + 1}")
        print(f"round {rnd + 1} done; load avg {os.getloadavg()[0]:.2f}", flush=True)
    if lists["paid positions"] != lists["usage log only"]:
        sys.exit("the two contenders list different events")
    events = sum(len(x) for x in lists["paid positions"])
    print(f"{len(picked)} entries, {events:,} events; {args.rounds} rounds; "
          f"load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    kinds = (("first", "first page (limit 500)"), ("paged", f"every page (limit {args.limit})"))
    for kind, label in kinds:
        for name in names:
            rounds = results[name][kind]
            walls = [statistics.median(r[0] for r in calls) * 1000 for calls in rounds]
            cpus = [statistics.median(r[1] for r in calls) * 1000 for calls in rounds]
            stmts = statistics.mean(r[2] for calls in rounds for r in calls)
            print(
                f"{label:<24} {name:<15} calls {len(rounds[0]):4}/round"
                f"  wall {min(walls):6.1f} / {statistics.median(walls):6.1f} / {max(walls):6.1f} ms"
                f"  cpu {min(cpus):6.1f} / {statistics.median(cpus):6.1f} / {max(cpus):6.1f} ms"
                f"  statements/call {stmts:.1f}"
            )


if __name__ == "__main__":
    main()
