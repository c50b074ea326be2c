"""Entries verified against the log's hash tiles (app.tlog.tileset) instead of one inclusion
proof each, against a real registry process: the tiles are stored once and `audit` re-verifies
them offline; a changed entry still fails with evidence any tlog tool verifies (the proof is
computed from the verified tiles); a changed stored tile or leaf is found by the offline audit;
entries alone in their tile keep a proof; a tile made of the user's own leaves is not read
(and a leaf answered falsely in it is still named, from the tile as served); the inclusions a
sync stores behind its usage checks are kept when the usage fails, and verified again when
storing them fails. (A served tile that
is not the checkpoint's: tests/unit/tlog/test_tlog_tileset.py.)"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.domain.errors import RegistryUnavailable
from app.registry_client.http import UNREADABLE
from app.services.transparency import LogVerificationFailed, audit
from app.services.transparency.sync import Leaf, LogSync, TileNeed
from app.store.rewards_models import RewardRecord
from app.store.tlog_models import LogLeafEvents, LogProof, LogTile
from app.tlog.tiles import TILE_WIDTH, tile_path
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
)
from tests.integration.test_transparency import _changed_amount_is_caught, _sync
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import NOW, accepted_items, post_usage, usage_events
from tests.unit.tlog.test_tlog_go_interop import gocheck  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

EVERY_TILE = 1  # SPARSE_BELOW: every tile fetched, however few of the user's leaves it holds
NO_TILE = 10**9  # SPARSE_BELOW: only inclusion proofs


def _key(desk: Desk) -> str:
    with desk.ctx.db.session() as s:
        key = s.scalar(select(LogTile.registry_key).limit(1))
    assert key is not None
    return key


def _entries(desk: Desk) -> tuple[int, int, int]:
    """(stored entries, entries verified by a tile, stored tiles)."""
    with desk.ctx.db.session() as s:
        records = int(s.scalar(select(func.count()).select_from(RewardRecord)) or 0)
        by_tile = int(
            s.scalar(
                select(func.count())
                .select_from(LogProof)
                .where(LogProof.proof == b"", ~LogProof.cursor.startswith("acceptance:"))
            )
            or 0
        )
        tiles = int(s.scalar(select(func.count()).select_from(LogTile)) or 0)
    return records, by_tile, tiles


@pytest.mark.parametrize("sparse_below", [EVERY_TILE, NO_TILE])
def test_entries_are_verified_by_tiles_or_proofs_and_audit_passes(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    monkeypatch: pytest.MonkeyPatch,
    sparse_below: int,
) -> None:
    monkeypatch.setattr("app.services.transparency.sync.SPARSE_BELOW", sparse_below)
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("first", cids, 40))
    report = _sync(desk)
    records, by_tile, tiles = _entries(desk)
    assert records == report.new_entries > 0
    if sparse_below == EVERY_TILE:
        assert by_tile == records and tiles > 0
    else:
        assert by_tile == 0 and tiles == 0
    result = audit(desk.ctx)
    assert result.ok, result.to_json()
    assert result.registries[0]["verifiedEntries"] == records
    # a second sync with new entries verifies them at a larger tree, with the tiles kept
    post_usage(registry, operator, usage_events("second", cids, 30))
    _sync(desk)
    records2, by_tile2, _tiles = _entries(desk)
    assert records2 > records
    assert by_tile2 == (records2 if sparse_below == EVERY_TILE else 0)
    result = audit(desk.ctx)
    assert result.ok, result.to_json()


def test_a_changed_entry_fails_with_evidence_from_the_tiles(
    gocheck: Callable[[Path], dict[str, Any]],  # noqa: F811
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    tmp_path: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.services.transparency.sync.SPARSE_BELOW", EVERY_TILE)
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("first", cids, 20))
    _sync(desk)
    # the proof in the evidence is computed from the stored tiles
    _changed_amount_is_caught(gocheck, desk, cids, registry, operator, tmp_path, data_dir)


class _TileReads:
    """The level-0 tiles a sync read from the registry and those it made of its own leaves."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fetched: list[TileNeed] = []
        self.made: set[TileNeed] = set()
        fetch, ahead = LogSync._fetch_tile, LogSync._read_tiles_ahead

        def fetching(sync: LogSync, tile: TileNeed) -> bytes:
            self.fetched.append(tile)
            return fetch(sync, tile)

        def reading(
            sync: LogSync, leaves: list[Leaf], size: int
        ) -> tuple[dict[TileNeed, bytes], frozenset[TileNeed]]:
            tiles, made = ahead(sync, leaves, size)
            self.made |= made
            return tiles, made

        monkeypatch.setattr(LogSync, "_fetch_tile", fetching)
        monkeypatch.setattr(LogSync, "_read_tiles_ahead", reading)


def _own_tiles(registry: RegistryProcess, operator: Contributor, desk: Desk) -> None:
    """~1,000 entries in one settlement (four a day over 250 days): the log's third tile
    (leaves 512-767) holds only the user's ledger leaves (the registry logs a leaf of its
    own for each batch of 500 events, and the acceptances come first)."""
    cids = accepted_items(desk, "alpha", "beta")
    events = usage_events("own", cids, 1000)
    for i, event in enumerate(events):
        event["at"] = (NOW - timedelta(hours=6 * i)).isoformat()
    post_usage(registry, operator, events)


def test_a_tile_of_the_users_own_leaves_is_made_not_read(
    desk: Desk, registry: RegistryProcess, operator: Contributor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.services.transparency.sync.SPARSE_BELOW", EVERY_TILE)
    _own_tiles(registry, operator, desk)
    reads = _TileReads(monkeypatch)
    _sync(desk)
    assert reads.made, "no tile holds only the user's leaves: the test needs one"
    assert not reads.made & set(reads.fetched)
    records, by_tile, _tiles = _entries(desk)
    assert by_tile == records > TILE_WIDTH
    # stored as the registry serves them, and the offline audit verifies them
    with desk.ctx.db.session() as s:
        for level, index, width in reads.made:
            stored = s.get(LogTile, (_key(desk), level, index))
            assert stored is not None
            served = httpx.get(f"{registry.base_url}/v1/log/{tile_path(level, index, width)}")
            assert stored.data == served.content
    result = audit(desk.ctx)
    assert result.ok and result.registries[0]["verifiedEntries"] == records, result.to_json()


def _forged(leaf: bytes) -> bytes:
    return leaf.replace(b'"amountMicro":', b'"amountMicro":1', 1)


def test_a_false_leaf_in_a_tile_made_of_the_answer_is_named_from_the_tile_as_served(
    desk: Desk, registry: RegistryProcess, operator: Contributor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry answers one leaf that is not the one it logged, in a tile the sync makes
    of the answer: the made tile does not hash to its parent's entry, the tile is read as
    served, and the failure names the entry and its index as when the tile is read."""
    monkeypatch.setattr("app.services.transparency.sync.SPARSE_BELOW", EVERY_TILE)
    _own_tiles(registry, operator, desk)
    reads = _TileReads(monkeypatch)
    read = LogSync._read_leaves
    lied: list[int] = []

    def lying(sync: LogSync, ids: list[str], size: int) -> list[Leaf]:
        leaves = read(sync, ids, size)
        answered = Counter(idx // TILE_WIDTH for _e, idx, _leaf in leaves)
        whole = min(t for t, n in answered.items() if n == TILE_WIDTH)
        lied.append(whole * TILE_WIDTH + 7)  # a leaf of the first tile the answer fills
        return [(e, idx, _forged(leaf) if idx == lied[0] else leaf) for e, idx, leaf in leaves]

    monkeypatch.setattr(LogSync, "_read_leaves", lying)
    with pytest.raises(LogVerificationFailed, match="its leaf is not the one logged") as failed:
        _sync(desk)
    assert f"at index {lied[0]}" in str(failed.value)
    tile = next(t for t in reads.made if t[1] == lied[0] // TILE_WIDTH)  # made of the answer
    assert tile in reads.fetched  # then read as served


@pytest.mark.parametrize("what", ["tile", "leaf"])
def test_the_offline_audit_finds_a_changed_stored_tile_or_leaf(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
) -> None:
    monkeypatch.setattr("app.services.transparency.sync.SPARSE_BELOW", EVERY_TILE)
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("first", cids, 20))
    _sync(desk)
    assert audit(desk.ctx).ok
    with desk.ctx.db.session() as s:
        if what == "tile":
            tile = s.get(LogTile, (_key(desk), 0, 0))
            assert tile is not None
            tile.data = bytes(32) + tile.data[32:]
        else:
            proof = s.scalars(
                select(LogProof).where(
                    LogProof.proof == b"", ~LogProof.cursor.startswith("acceptance:")
                )
            ).first()
            assert proof is not None
            proof.leaf = proof.leaf.replace(b'"amountMicro":', b'"amountMicro":1', 1)
            record = s.scalars(
                select(RewardRecord).where(RewardRecord.cursor == proof.cursor)
            ).one()
            record.amount_micro = int(json.loads(proof.leaf)["amountMicro"])
        s.commit()
    result = audit(desk.ctx)
    assert not result.ok
    assert any(("tile" if what == "tile" else "not the one logged") in p for p in result.problems)
    assert run_cli("audit", data_dir=data_dir).code == 4


def test_the_offline_audit_rederives_the_filed_events_from_the_leaves(
    desk: Desk, registry: RegistryProcess, operator: Contributor, data_dir: Path
) -> None:
    """The events filed per contribution and day (what a sync checks the registry's usage
    against) are re-derived from the verified leaves: a changed count, a removed row and a row
    no leaf names are each a problem, and the CLI's audit fails."""
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("first", cids, 20))
    _sync(desk)
    assert audit(desk.ctx).ok
    with desk.ctx.db.session() as s:
        rows = s.scalars(select(LogLeafEvents).order_by(LogLeafEvents.cursor)).all()
        assert len(rows) >= 2
        changed, removed = rows[0], rows[1]
        changed.events += 5
        s.delete(removed)
        s.add(LogLeafEvents(
            scope=changed.scope, contribution_id=changed.contribution_id, day=changed.day,
            model_id=changed.model_id, method=changed.method, cursor="999999",
            settlement=0, events=3,
        ))  # fmt: skip
        s.commit()
        changed_cursor, removed_cursor = changed.cursor, removed.cursor
    problems = audit(desk.ctx).problems
    assert len(problems) == 3, problems
    assert any(f"ledger entry {changed_cursor}: the events filed for it" in p for p in problems)
    assert any(f"ledger entry {removed_cursor}: its leaf's" in p for p in problems)
    assert any("ledger entry 999999: events filed for" in p for p in problems)
    assert run_cli("audit", data_dir=data_dir).code == 4


def _proven(desk: Desk) -> int:
    with desk.ctx.db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(LogProof)
                .where(~LogProof.cursor.startswith("acceptance:"))
            )
            or 0
        )


def test_inclusions_stored_behind_the_usage_are_kept_or_verified_again(
    desk: Desk, registry: RegistryProcess, operator: Contributor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync stores the entries' verified inclusions while it checks the usage: a usage
    answer refused meanwhile keeps them all; when storing them fails, the entries are kept
    without them and the next sync verifies them again."""
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("first", cids, 30))

    def refused(*_a: Any, **_k: Any) -> Any:
        raise RegistryUnavailable(UNREADABLE, hint="usage refused")

    with monkeypatch.context() as m:
        m.setattr("app.services.rewards.RewardsSync._read_windows", refused)
        with pytest.raises(RegistryUnavailable, match="usage refused"):
            _sync(desk)
    records, _by_tile, _tiles = _entries(desk)
    assert records > 0 and _proven(desk) == records
    assert audit(desk.ctx).ok

    post_usage(registry, operator, usage_events("second", cids, 30))

    def full(*_a: Any, **_k: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("app.services.rewards.RewardsSync._store_proven", full)
        with pytest.raises(OSError, match="No space left"):
            _sync(desk)
    more, _by_tile, _tiles = _entries(desk)
    assert more > records and _proven(desk) == records  # the new ones stored, not proven
    _sync(desk)
    assert _proven(desk) == more
    result = audit(desk.ctx)
    assert result.ok, result.to_json()
    assert result.registries[0]["verifiedEntries"] == more
