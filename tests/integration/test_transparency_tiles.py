"""Entries verified against the log's hash tiles (app.tlog.tileset) instead of one inclusion
proof each, against a real registry process: the tiles are stored once and `audit` re-verifies
them offline; a changed entry still fails with evidence any tlog tool verifies (the proof is
computed from the verified tiles); a changed stored tile or leaf is found by the offline audit;
entries alone in their tile keep a proof; the inclusions a sync stores behind its usage checks
are kept when the usage fails, and verified again when storing them fails. (A served tile that
is not the checkpoint's: tests/unit/tlog/test_tlog_tileset.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.domain.errors import RegistryUnavailable
from app.registry_client.http import UNREADABLE
from app.services.transparency import audit
from app.store.rewards_models import RewardRecord
from app.store.tlog_models import LogLeafEvents, LogProof, LogTile
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
from tests.support.rewards_flow import accepted_items, post_usage, usage_events
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
        m.setattr("app.services.rewards.usage_window", refused)
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
