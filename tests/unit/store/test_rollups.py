"""Rollups of the rewards copy (app.store.rollups): migration 0009 fills them from the rows an
existing catalogue holds, and the incremental upkeep a sync does (ledger pages, usage windows
replaced, a second identity syncing the same contribution, a batch of windows planned together
and written once) leaves exactly what recomputing them from the rows gives."""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import insert

from app.store.db import Database
from app.store.rewards_models import RewardRecord, SyncCursor, ensure_scope
from app.store.rollups import (
    ROLLUP_TABLES,
    Amounts,
    DayKey,
    UsageWrites,
    add_ledger,
    plan_usage_window,
    rebuild,
    replace_usage_window,
    usage_owners_of,
    usage_window,
    usage_windows,
    write_usage,
)
from tests.support.catalogue_db import at_revision, rows, upgraded, write

KEY = "reg-1"


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    return {t: sorted(rows(path, f"SELECT * FROM {t}")) for t in ROLLUP_TABLES}


def test_0009_fills_the_rollups_of_an_existing_copy(tmp_path: Path) -> None:
    path = at_revision(tmp_path, "0008")
    write(
        path,
        "INSERT INTO sync_cursors (registry_key, owner, stream, cursor, synced_at) "
        "VALUES (?, ?, ?, '2026-12-01', '2026-12-01 10:00:00')",
        (KEY, "o1", "usage:c_1"), (KEY, "o1", "usage:c_2"), (KEY, "o2", "usage:c_2"),
    )  # fmt: skip
    write(
        path,
        "INSERT INTO reward_entries (registry_key, owner, cursor, event_id, contribution_id,"
        " model_id, method, amount_micro, at, demo) VALUES (?,?,?,?,?,?,?,?,?,0)",
        (KEY, "o1", "1", "e1", "c_1", "m", "influence", 5, "2026-11-30 23:59:59.000000"),
        (KEY, "o1", "2", "e2", "c_1", "m", "influence", 7, "2026-11-30 08:00:00.000000"),
        (KEY, "o1", "3", "e3", "c_2", "m", "retrieval", 11, "2026-12-01 00:00:00.000000"),
        (KEY, "o2", "4", "e4", "c_2", "n", "retrieval", 13, "2026-12-01 00:00:00.000000"),
    )
    write(
        path,
        "INSERT INTO usage_days VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (KEY, "c_1", "2026-11-30", "m", "influence", 2, 900_000, 12),
        (KEY, "c_2", "2026-11-30", "m", "influence", 3, 100_000, 1),
        (KEY, "c_2", "2026-12-01", "m", "retrieval", 1, 500_000, 11),
        (KEY, "c_9", "2026-12-01", "m", "retrieval", 4, 4, 4),  # nobody syncs it
    )

    upgraded(tmp_path, "0009")  # fills the rollups
    got = _tables(path)
    assert got["ledger_rollup_days"] == [
        (KEY, "o1", "c_1", "2026-11-30", "m", "influence", 12, 2),
        (KEY, "o1", "c_2", "2026-12-01", "m", "retrieval", 11, 1),
        (KEY, "o2", "c_2", "2026-12-01", "n", "retrieval", 13, 1),
    ]
    assert got["ledger_rollup_totals"] == [
        (KEY, "o1", "c_1", "m", "influence", 12, 2),
        (KEY, "o1", "c_2", "m", "retrieval", 11, 1),
        (KEY, "o2", "c_2", "n", "retrieval", 13, 1),
    ]
    assert got["usage_rollup_days"] == [
        (KEY, "o1", "2026-11-30", "m", "influence", 2, 5, 1_000_000, 13),
        (KEY, "o1", "2026-12-01", "m", "retrieval", 1, 1, 500_000, 11),
        (KEY, "o2", "2026-11-30", "m", "influence", 1, 3, 100_000, 1),
        (KEY, "o2", "2026-12-01", "m", "retrieval", 1, 1, 500_000, 11),
    ]
    assert got["usage_rollup_contributions"] == [
        (KEY, "o1", "c_1", "2026-11-30", 1, 2, 900_000, 12),
        (KEY, "o1", "c_2", "2026-11-30", 1, 3, 100_000, 1),
        (KEY, "o1", "c_2", "2026-12-01", 1, 1, 500_000, 11),
        (KEY, "o2", "c_2", "2026-11-30", 1, 3, 100_000, 1),
        (KEY, "o2", "c_2", "2026-12-01", 1, 1, 500_000, 11),
    ]


def _window(rng: random.Random, since: date, days: int) -> dict[DayKey, Amounts]:
    out: dict[DayKey, Amounts] = {}
    for d in range(days):
        for model in ("m1", "m2", "m3"):
            for method in ("influence", "retrieval"):
                if rng.random() < 0.4:
                    out[(since + timedelta(days=d), model, method)] = (
                        rng.randrange(0, 50),
                        rng.randrange(0, 10**6),
                        rng.randrange(0, 10**4),
                    )
    return out


def test_incremental_upkeep_equals_recomputing_from_the_rows(tmp_path: Path) -> None:
    db = Database(tmp_path)
    rng = random.Random(5)
    first = date(2026, 9, 1)
    cursor = 0
    try:
        for step in range(40):
            owner = ("o1", "o2")[step % 5 == 4]  # o2 syncs some of the same contributions later
            cid = f"c_{rng.randrange(4)}"
            since = first + timedelta(days=rng.randrange(60))
            span = rng.randrange(1, 30)
            until = since + timedelta(days=span - 1)
            stream = f"usage:{cid}"
            with db.session() as s:
                old = usage_window(s, KEY, cid, since, until)
                new = _window(rng, since, span)
                outside = None
                if step % 2 and s.get(SyncCursor, (KEY, owner, stream)) is None:
                    # As the sync does for an owner's first window: the days outside it, read
                    # by the caller, are passed in rather than read again after the insert.
                    stored = usage_window(s, KEY, cid, date.min, date.max)
                    outside = {k: v for k, v in stored.items() if k not in old}
                replace_usage_window(s, KEY, owner, cid, since, until, old, new, outside)
                if s.get(SyncCursor, (KEY, owner, stream)) is None:
                    s.add(SyncCursor(registry_key=KEY, owner=owner, stream=stream, cursor="x"))
                entries = []
                scope = ensure_scope(s, KEY, owner)
                for _ in range(rng.randrange(0, 6)):
                    cursor += 1
                    entries.append(
                        {
                            "scope": scope,
                            "cursor": str(cursor),
                            "event_id": f"e{cursor}",
                            "contribution_id": cid,
                            "model_id": rng.choice(("m1", "m2")),
                            "method": "influence",
                            "amount_micro": rng.randrange(1, 1000),
                            "at": datetime.combine(since, time(23, 59), UTC)
                            + timedelta(days=rng.randrange(span)),
                            "demo": False,
                        }
                    )
                if entries:
                    s.execute(insert(RewardRecord), entries)
                add_ledger(
                    s,
                    KEY,
                    owner,
                    (
                        (
                            e["at"].date(),
                            e["contribution_id"],
                            e["model_id"],
                            e["method"],
                            e["amount_micro"],
                        )
                        for e in entries
                    ),
                )
                s.commit()
        kept = _tables(db.path)
        with db.session() as s:
            rebuild(s, KEY)
            s.commit()
        recomputed = _tables(db.path)
    finally:
        db.dispose()
    assert all(recomputed.values())
    for table in ROLLUP_TABLES:
        assert kept[table] == recomputed[table], table


def test_windows_planned_together_and_written_once_equal_one_at_a_time(tmp_path: Path) -> None:
    """A batch of windows of different contributions planned against the same stored state
    (as the sync plans them while the writer has not written them yet) and written in one
    transaction leaves what replacing them one at a time leaves; the cursors it sets read
    back through the ORM like the ORM's own."""
    rng = random.Random(9)
    first = date(2026, 9, 1)
    before = {f"c_{n}": _window(rng, first, 20) for n in range(4)}
    batch = [
        (owner, f"c_{n}", first + timedelta(days=d), span)
        for owner, n, d, span in (("o1", 0, 5, 10), ("o1", 1, 0, 25), ("o2", 2, 3, 6),
                                  ("o1", 3, 15, 12))
    ]  # fmt: skip
    news = {cid: _window(rng, since, span) for _o, cid, since, span in batch}
    results = []
    # one at a time; planned together; planned together from one read of the batch's owners
    # and stored days (usage_owners_of, usage_windows), as the sync plans them
    for together, read_at_once in ((False, False), (True, False), (True, True)):
        db = Database(tmp_path / f"{together}-{read_at_once}")
        try:
            with db.session() as s:  # the same stored days and an o1 that syncs c_0 and c_1
                for cid, days in before.items():
                    replace_usage_window(s, KEY, "o1", cid, first, first, {}, days, None)
                    if cid in ("c_0", "c_1"):
                        s.add(SyncCursor(registry_key=KEY, owner="o1", stream=f"usage:{cid}"))
                s.commit()
            with db.session() as s:
                writes = UsageWrites(KEY)
                ids = [cid for _o, cid, _s, _n in batch]
                owners, stored = usage_owners_of(s, KEY, ids), usage_windows(s, KEY, ids, date.min)
                for owner, cid, since, span in batch:
                    until = since + timedelta(days=span - 1)
                    old = usage_window(s, KEY, cid, since, until)
                    if read_at_once:
                        assert old == {
                            k: v for k, v in stored[cid].items() if since <= k[0] <= until
                        }
                        outside = None
                        if owner not in owners[cid]:
                            outside = {k: v for k, v in stored[cid].items() if k not in old}
                        plan_usage_window(
                            s, writes, owner, cid, since, until, old, news[cid], outside,
                            owners[cid],
                        )  # fmt: skip
                        writes.set_cursor(owner, f"usage:{cid}", until.isoformat())
                    elif together:
                        plan_usage_window(s, writes, owner, cid, since, until, old, news[cid])
                        writes.set_cursor(owner, f"usage:{cid}", until.isoformat())
                    else:
                        replace_usage_window(s, KEY, owner, cid, since, until, old, news[cid])
                        row = s.get(SyncCursor, (KEY, owner, f"usage:{cid}"))
                        if row is None:
                            row = SyncCursor(registry_key=KEY, owner=owner, stream=f"usage:{cid}")
                            s.add(row)
                        row.cursor = until.isoformat()
                        row.synced_at = datetime.now(UTC)
                        s.flush()
                if together:
                    write_usage(s, writes)
                s.commit()
            with db.session() as s:
                read = s.query(SyncCursor).filter(SyncCursor.cursor.is_not(None)).all()
                assert all(isinstance(c.synced_at, datetime) for c in read)
            cursors = sorted(  # the time stored as the ORM stores it
                (o, stream, c, bool(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", t)))
                for o, stream, c, t in rows(
                    db.path,
                    "SELECT owner, stream, cursor, synced_at FROM sync_cursors "
                    "WHERE cursor IS NOT NULL",
                )
            )
            results.append((_tables(db.path), sorted(rows(db.path, "SELECT * FROM usage_days")),
                            cursors))  # fmt: skip
        finally:
            db.dispose()
    assert results[0] == results[1] == results[2]
    assert [c[3] for c in results[1][2]] == [True] * 4
