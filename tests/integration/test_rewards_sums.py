"""Usage a registry reports may be huge, but what the catalogue stores must stay summable: a
window that would take the stored totals past 2^63 - 1 is refused before it is written, so the
offline review (SQLite sums) keeps working. Real registry, answers crafted by the fault proxy."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain.errors import RegistryUnavailable
from app.services.clients import make_client
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync, open_review
from tests.integration.faults.helpers import Desk, make_desk, start_registry
from tests.integration.faults.proxy import Fault, FaultProxy
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import accepted_items, one_window_a_read

pytestmark = pytest.mark.slow

HALF = 2**62 + 1  # one window may hold it; two of them do not fit in a signed 64-bit sum


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path, "--operator-key", Contributor().public_key)
    try:
        yield proc
    finally:
        proc.kill(signal.SIGTERM)


def _sync(desk: Desk) -> Any:
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    client = make_client(desk.ctx)
    try:
        return RewardsSync(desk.ctx, client, owner.fingerprint).run()
    finally:
        client.close()


def _window(cid: str, count: int) -> bytes:
    """A usage window of `count` events and share, earning nothing (a reward no ledger entry
    backs would fail the transparency log's cross-check before the overflow check)."""
    today = date.today()
    return json.dumps(
        {
            "contributionId": cid,
            "bucket": "day",
            "since": (today - timedelta(days=89)).isoformat(),
            "until": today.isoformat(),
            "series": [
                {
                    "modelId": "m1",
                    "method": "influence",
                    "points": [
                        {
                            "start": today.isoformat(),
                            "events": count,
                            "sharePpm": count,
                            "rewardMicro": 0,
                        }
                    ],
                }
            ],
            "totals": {"events": count, "rewardMicro": 0},
        }
    ).encode()


@pytest.mark.parametrize("many", [False, True], ids=["one window a read", "many windows a read"])
def test_usage_that_would_overflow_the_stored_sums_is_refused(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
    many: bool,
) -> None:
    if not many:
        one_window_a_read(monkeypatch)
    relay = FaultProxy(registry.port)
    desk = make_desk(tmp_path, data_dir, relay.url)
    try:
        a, b = accepted_items(desk, "first", "second")
        if many:
            both = {"windows": [json.loads(_window(cid, HALF)) for cid in (a, b)]}
            relay.add(
                Fault("answer", count=1, path_prefix="/v1/me/usage-windows", status=200,
                      body=json.dumps(both).encode())
            )  # fmt: skip
        for cid in () if many else (a, b):
            relay.add(
                Fault(
                    "answer",
                    count=1,
                    path_prefix=f"/v1/contributions/{cid}/usage",
                    status=200,
                    body=_window(cid, HALF),
                )
            )
        with pytest.raises(RegistryUnavailable, match="unreadable") as refused:
            _sync(desk)
        assert "nothing of that window was stored" in (refused.value.hint or "")
        owner = IdentityService(desk.ctx).current()
        assert owner is not None
        view = open_review(desk.ctx, owner.fingerprint).overview()  # sums work: no overflow
        assert sum(e for _d, e, _r in view.daily) == HALF  # the first window, not the second
    finally:
        desk.ctx.close()
        relay.close()
