"""A page of ledger entries is stored in one executemany with its rollups summed in SQL: the
rows read back exactly like rows the ORM writes, an entry already stored is neither stored
nor summed twice, and the rollups equal a rebuild from the rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from app.registry_client.usage import RewardEntry, RewardsPage
from app.services.context import ServiceContext
from app.services.rewards import RewardsSync
from app.store import rollups
from app.store.rewards_models import RewardRecord

KEY, OWNER = "registry-key", "f" * 64
T0 = datetime(2026, 11, 20, 23, 59, 58, 120000, tzinfo=UTC)


def _entry(n: int, cid: str, at: datetime, micro: int) -> RewardEntry:
    return RewardEntry(str(n), f"s{n}", cid, "m1", "influence", micro, at, n % 2 == 0)


def _rollups(ctx: ServiceContext) -> dict[str, list[Any]]:
    with ctx.db.session() as s:
        return {
            table: sorted(tuple(r) for r in s.execute(text(f"SELECT * FROM {table}")))
            for table in ("ledger_rollup_days", "ledger_rollup_totals")
        }


def test_a_page_is_stored_once_with_its_rollups_as_a_rebuild_gives(tmp_path: Path) -> None:
    ctx = ServiceContext(tmp_path / "data", "http://127.0.0.1:1")
    try:
        sync = RewardsSync(ctx, None, OWNER)  # type: ignore[arg-type]
        sync.registry = KEY
        plus2 = timezone(timedelta(hours=2))
        first = (
            _entry(1, "c1", T0, 10),
            _entry(2, "c1", T0 + timedelta(seconds=2), 5),  # the next UTC day
            _entry(3, "c2", T0.astimezone(plus2), 7),  # stored as given, like the ORM
        )
        assert sync._store_page(RewardsPage(first, "3", False), None) == (3, 22)
        # A page that repeats entry 3 (a registry answering again): stored and summed once.
        again = (first[2], _entry(4, "c1", T0, 1))
        assert sync._store_page(RewardsPage(again, "4", False), "3") == (2, 8)
        assert sync._store_page(RewardsPage(first, "3", False), None) == (0, 0)  # not after

        with ctx.db.session() as s:
            stored = s.execute(
                text("SELECT cursor, at, demo FROM reward_entries ORDER BY id")
            ).all()
            # The same entries written by the ORM under another key read back the same.
            s.execute(
                insert(RewardRecord),
                [
                    {"registry_key": "orm", "owner": OWNER, "cursor": e.cursor,
                     "event_id": e.event_id, "contribution_id": e.contribution_id,
                     "model_id": e.model_id, "method": e.method,
                     "amount_micro": e.amount_micro, "at": e.at, "demo": e.demo}
                    for e in (*first, again[1])
                ],
            )  # fmt: skip
            orm = s.execute(
                text(
                    "SELECT cursor, at, demo FROM reward_entries "
                    "WHERE registry_key = 'orm' ORDER BY id"
                )
            ).all()
            typed = s.scalars(
                select(RewardRecord.at)
                .where(RewardRecord.registry_key == KEY)
                .order_by(RewardRecord.id)
            )
            assert [a.replace(tzinfo=None) for a in typed] == [
                e.at.replace(tzinfo=None) for e in (*first, again[1])
            ]
            s.rollback()
        assert stored == orm
        summed = _rollups(ctx)
        assert [(r[2], str(r[3]), r[6], r[7]) for r in summed["ledger_rollup_days"]] == [
            ("c1", "2026-11-20", 11, 2),
            ("c1", "2026-11-21", 5, 1),
            ("c2", "2026-11-21", 7, 1),  # its stored (+02:00) wall time's day
        ]
        with ctx.db.session() as s:
            rollups.rebuild(s, KEY)
            s.commit()
        assert _rollups(ctx) == summed
    finally:
        ctx.close()
