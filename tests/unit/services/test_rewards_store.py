"""A page of ledger entries is stored in one statement with its rollups summed in SQL: the
rows read back exactly like rows the ORM writes (also those that go by executemany), an entry
already stored is neither stored nor summed twice, and the rollups equal a rebuild from the
rows. A sync stores its pages on a writer behind the checks of the next ones, in order, and
keeps the pages stored before an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from app.domain.errors import RegistryUnavailable
from app.registry_client.usage import RewardEntry, RewardsPage
from app.services.context import ServiceContext
from app.services.rewards import RewardsSync
from app.store import rollups
from app.store.rewards_models import RewardRecord, ensure_scope

KEY, OWNER = "registry-key", "f" * 64
T0 = datetime(2026, 11, 20, 23, 59, 58, 120000, tzinfo=UTC)


def _entry(n: int, cid: str, at: datetime, micro: int) -> RewardEntry:
    return RewardEntry(str(n), f"s{n}", cid, "m1", "influence", micro, at, n % 2 == 0)


def _scope(ctx: ServiceContext, key: str = KEY) -> int:
    with ctx.db.session() as s:
        scope = ensure_scope(s, key, OWNER)
        s.commit()
    return scope


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
        sync.scope = _scope(ctx)
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
        # Event ids JSON cannot carry (a NUL) take executemany; others any text, and amounts
        # up to SQLite's largest integer.
        odd = (
            RewardEntry("5", "s5\x00x", "c2", "m1", "influence", 2**62, T0, False),
            RewardEntry("6", 'é😀\u2028"\\', "c2", "m1", "influence", 3, T0, True),
        )
        assert sync._store_page(RewardsPage(odd[1:], "6", False), "4") == (1, 3)
        assert sync._store_page(RewardsPage(odd[:1], "5", False), "6") == (1, 2**62)
        assert sync._store_page(RewardsPage(first, "3", False), None) == (0, 0)  # not after

        with ctx.db.session() as s:
            columns = "cursor, event_id, contribution_id, amount_micro, at, demo"
            stored = s.execute(text(f"SELECT {columns} FROM reward_entries ORDER BY id")).all()
            # The same entries written by the ORM under another key read back the same.
            orm_scope = ensure_scope(s, "orm", OWNER)
            s.execute(
                insert(RewardRecord),
                [
                    {"scope": orm_scope, "cursor": e.cursor,
                     "event_id": e.event_id, "contribution_id": e.contribution_id,
                     "model_id": e.model_id, "method": e.method,
                     "amount_micro": e.amount_micro, "at": e.at, "demo": e.demo}
                    for e in (*first, again[1], odd[1], odd[0])
                ],
            )  # fmt: skip
            orm = s.execute(
                text(f"SELECT {columns} FROM reward_entries WHERE scope = {orm_scope} ORDER BY id")
            ).all()
            typed = s.scalars(
                select(RewardRecord.at)
                .where(RewardRecord.scope == sync.scope)
                .order_by(RewardRecord.id)
            )
            assert [a.replace(tzinfo=None) for a in typed] == [
                e.at.replace(tzinfo=None) for e in (*first, again[1], odd[1], odd[0])
            ]
            s.rollback()
        assert stored == orm
        summed = _rollups(ctx)
        assert [(r[1], str(r[2]), r[5], r[6]) for r in summed["ledger_rollup_days"]] == [
            ("c1", "2026-11-20", 11, 2),
            ("c1", "2026-11-21", 5, 1),
            ("c2", "2026-11-20", 2**62 + 3, 2),
            ("c2", "2026-11-21", 7, 1),  # its stored (+02:00) wall time's day
        ]
        with ctx.db.session() as s:
            rollups.rebuild(s, KEY)
            s.commit()
        assert _rollups(ctx) == summed
    finally:
        ctx.close()


def _pages() -> list[RewardsPage]:
    return [
        RewardsPage(tuple(_entry(n, "c1", T0, n) for n in (1, 2, 3)), "3", True),
        RewardsPage(tuple(_entry(n, "c1", T0, n) for n in (4, 5)), "5", True),
        RewardsPage((_entry(6, "c1", T0, 6),), "6", False),
    ]


def _stored(ctx: ServiceContext) -> tuple[list[str], str | None]:
    with ctx.db.session() as s:
        cursors = list(s.scalars(text("SELECT cursor FROM reward_entries ORDER BY id")))
        cursor = s.scalar(text("SELECT cursor FROM sync_cursors WHERE stream = 'rewards'"))
    return cursors, cursor


def _serving(sync: RewardsSync, pages: list[RewardsPage]) -> None:
    served = {None if n == 0 else pages[n - 1].next_cursor: p for n, p in enumerate(pages)}
    sync._read_page = lambda cursor: served[cursor]  # type: ignore[method-assign]


def test_pages_are_stored_in_order_behind_the_checks(tmp_path: Path) -> None:
    ctx = ServiceContext(tmp_path / "data", "http://127.0.0.1:1")
    try:
        sync = RewardsSync(ctx, None, OWNER)  # type: ignore[arg-type]
        sync.registry = KEY
        sync.scope = _scope(ctx)
        _serving(sync, _pages())
        said: list[str] = []
        assert sync._sync_rewards(said.append) == (6, 21, "6")
        assert said == [f"Rewards: {n} new entries" for n in (3, 5, 6)]
        assert _stored(ctx) == (["1", "2", "3", "4", "5", "6"], "6")
    finally:
        ctx.close()


def test_a_page_refused_while_the_one_before_is_stored_keeps_that_one(tmp_path: Path) -> None:
    ctx = ServiceContext(tmp_path / "data", "http://127.0.0.1:1")
    try:
        sync = RewardsSync(ctx, None, OWNER)  # type: ignore[arg-type]
        sync.registry = KEY
        sync.scope = _scope(ctx)
        pages = _pages()
        pages[2] = RewardsPage((_entry(4, "c1", T0, 4),), "4", False)  # not after entry 5
        _serving(sync, pages)
        with pytest.raises(RegistryUnavailable, match="not after"):
            sync._sync_rewards(lambda _m: None)
        assert _stored(ctx) == (["1", "2", "3", "4", "5"], "5")
    finally:
        ctx.close()


def test_an_error_storing_a_page_surfaces_and_stores_nothing_after_it(tmp_path: Path) -> None:
    ctx = ServiceContext(tmp_path / "data", "http://127.0.0.1:1")
    try:
        sync = RewardsSync(ctx, None, OWNER)  # type: ignore[arg-type]
        sync.registry = KEY
        sync.scope = _scope(ctx)
        _serving(sync, _pages())
        store = sync._store_page

        def failing(
            page: RewardsPage, after: str | None, proofs: Any = (), proven: Any = None
        ) -> tuple[int, int]:
            if after == "3":
                raise OSError(28, "No space left on device")
            return store(page, after, proofs, proven)

        sync._store_page = failing  # type: ignore[method-assign]
        with pytest.raises(OSError, match="No space left"):
            sync._sync_rewards(lambda _m: None)
        assert _stored(ctx) == (["1", "2", "3"], "3")
    finally:
        ctx.close()
