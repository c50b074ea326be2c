"""A registry (here a relay in front of a real one) that serves a hash tile which is not the one
its signed checkpoint commits to: the sync stops as an inclusion failure, names the tiles, and
keeps every entry and proof stored before; once honest tiles are served again the next sync
verifies, and `audit` finds every stored entry sound with the lie kept on record. (The tile
set's own refusal: tests/unit/tlog/test_tlog_tileset.py.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.services.transparency import LogVerificationFailed, audit
from tests.integration.faults.helpers import (
    make_desk,
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
    proxy_fixture,  # noqa: F401 - fixture 'proxy'
)
from tests.integration.faults.proxy import Fault, FaultProxy
from tests.integration.test_transparency import _failures, _snapshot, _sync
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import accepted_items, post_usage, usage_events

pytestmark = pytest.mark.slow


def _served_tile(registry: RegistryProcess) -> tuple[str, bytes]:
    """Path and bytes of the level-0 tile at the right edge of the registry's current tree."""
    with httpx.Client(base_url=registry.base_url, timeout=30) as http:
        note = http.get("/v1/log/checkpoint").raise_for_status().text
        size = int(note.splitlines()[1])
        assert 0 < size < 256  # one partial tile holds the whole tree
        path = f"/v1/log/tile/0/000.p/{size}"
        return path, http.get(path).raise_for_status().content


def test_a_tile_that_is_not_the_checkpoints_fails_the_sync_and_keeps_the_copy(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    operator: Contributor,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.services.transparency.sync.SPARSE_BELOW", 1)  # always tiles
    desk = make_desk(tmp_path, data_dir, proxy.url)
    try:
        cids = accepted_items(desk, "alpha", "beta")
        post_usage(registry, operator, usage_events("first", cids, 12))
        _sync(desk)
        before = _snapshot(desk.ctx)

        post_usage(registry, operator, usage_events("second", cids, 12))
        path, honest = _served_tile(registry)
        lie = bytearray(honest)
        lie[-1] ^= 0x01  # the newest leaf's hash, one bit off
        fault = proxy.add(
            Fault(
                "answer", 10, "GET", path, status=200, body=bytes(lie),
                headers={"Content-Type": "application/octet-stream"},
            )
        )  # fmt: skip
        with pytest.raises(LogVerificationFailed, match=r"\(inclusion\).*hash tiles"):
            _sync(desk)
        assert fault.applied >= 1
        after = _snapshot(desk.ctx)  # no entry or proof stored from the lying answer (the
        # new checkpoint, signed and consistent with the last, is kept: it is the evidence)
        assert after["records"] == before["records"] and after["proofs"] == before["proofs"]
        assert _failures(desk.ctx) == ["inclusion"]
        assert not audit(desk.ctx).ok  # the recorded failure stays visible offline

        proxy.clear()
        report = _sync(desk)
        assert report.new_entries > 0
        assert len(_snapshot(desk.ctx)["records"]) > len(before["records"])
        result = audit(desk.ctx)  # the lie stays on record; everything stored verifies
        assert result.problems == [] and _failures(desk.ctx) == ["inclusion"]
    finally:
        desk.ctx.close()
