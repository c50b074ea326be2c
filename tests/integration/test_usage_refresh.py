"""A sync reads again only the usage windows that can have changed (app.services.usage_plan),
counted at a relay in front of the real registry on loopback."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.registry_client.usage import usage_window
from app.services.clients import make_client
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    make_desk,
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
)
from tests.integration.faults.proxy import FaultProxy
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import (
    accepted_items,
    age_usage_windows,
    post_usage,
    window_reads,
)

pytestmark = pytest.mark.slow


def _sync(desk: Desk) -> Any:
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    client = make_client(desk.ctx)
    try:
        return RewardsSync(desk.ctx, client, owner.fingerprint).run()
    finally:
        client.close()


def _window_reads(relay: FaultProxy) -> dict[str, str]:
    """contribution id -> `since` of each usage window read through the relay, then forgotten."""
    reads = dict(window_reads(seen.path for seen in relay.seen))
    relay.seen.clear()
    return reads


def _events(tag: str, pairs: list[tuple[str, str]], days_ago: list[int]) -> list[dict[str, Any]]:
    """One event per (pair, age in days), paying both contributions of the pair."""
    now = datetime.now(UTC)
    return [
        {
            "eventId": f"{tag}-{n}",
            "modelId": "sync-model",
            "at": (now - timedelta(days=age, minutes=5)).isoformat(),
            "feeMicro": 2_000 + 17 * n,
            "attributions": [
                {"contributionId": a, "weight": 0.5, "method": "influence"},
                {"contributionId": b, "weight": 0.5, "method": "retrieval"},
            ],
        }
        for n, ((a, b), age) in enumerate((p, d) for p in pairs for d in days_ago)
    ]


def _registry_daily(desk: Desk, cids: list[str]) -> list[dict[str, Any]]:
    """Events and rewards per day over all `cids`, read from the registry whole (90 days)."""
    client = make_client(desk.ctx)
    per_day: dict[date, list[int]] = {}
    try:
        for cid in cids:
            window = usage_window(client, cid)
            for p in window.points:
                acc = per_day.setdefault(p.start, [0, 0])
                acc[0] += p.events
                acc[1] += p.reward_micro
    finally:
        client.close()
    return [
        {"day": d.isoformat(), "events": v[0], "rewardMicro": v[1]}
        for d, v in sorted(per_day.items())
        if v[0]
    ]


def test_a_sync_with_nothing_new_reads_no_window_and_new_settlements_only_what_changed(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    operator: Contributor,
) -> None:
    relay = FaultProxy(registry.port)
    desk = make_desk(tmp_path, data_dir, relay.url)
    try:
        a, b, c, d = accepted_items(desk, "ash", "birch", "cedar", "douglas")
        post_usage(registry, operator, _events("first", [(a, b), (c, d)], [1, 5, 20]))
        _sync(desk)
        assert set(_window_reads(relay)) == {a, b, c, d}  # the first sync reads every window

        nothing = _sync(desk)
        assert nothing.new_entries == 0
        assert _window_reads(relay) == {}  # nothing settled, nothing new: no window read

        # New events for a and b only, the earliest 3 days ago: those two, from that day.
        post_usage(registry, operator, _events("more", [(a, b)], [0, 3]))
        more = _sync(desk)
        assert more.new_entries > 0
        since = (datetime.now(UTC) - timedelta(days=3, minutes=5)).date().isoformat()
        assert _window_reads(relay) == {a: since, b: since}
        out = run_cli("--registry", relay.url, "rewards", "--json", data_dir=data_dir)
        assert out.code == 0, out.err
        assert json.loads(out.out)["daily"] == _registry_daily(desk, [a, b, c, d])

        relay.seen.clear()  # the registry's own windows, read through the relay just above
        age_usage_windows(desk.ctx)  # a day later: every window is read again, whole
        _sync(desk)
        whole = (datetime.now(UTC).date() - timedelta(days=89)).isoformat()
        assert _window_reads(relay) == {a: whole, b: whole, c: whole, d: whole}
    finally:
        desk.ctx.close()
        relay.close()
