"""Usage and rewards sync against the real registry, then offline review (real CLI too)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.domain.errors import RegistryUnavailable
from app.registry_client import usage as usage_api
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync, open_review
from app.services.upload_workers import make_client
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk', on this module's 'registry'
    start_registry,
)
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import accepted_items, post_usage, usage_events

pytestmark = pytest.mark.slow


@pytest.fixture
def operator() -> Contributor:
    return Contributor()


@pytest.fixture(name="registry")
def registry_with_operator(tmp_path: Path, operator: Contributor) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path, "--operator-key", operator.public_key)
    try:
        yield proc
    finally:
        proc.kill(signal.SIGTERM)


def _registry_summary(desk: Desk) -> dict[str, Any]:
    client = make_client(desk.ctx)
    try:
        return client.http.json("GET", "/v1/me/summary", params={"limit": 1000})
    finally:
        client.close()


def _sync(desk: Desk) -> Any:
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    client = make_client(desk.ctx)
    try:
        return RewardsSync(desk.ctx, client, owner.fingerprint).run()
    finally:
        client.close()


def _review(desk: Desk, contribution: str | None = None) -> Any:
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    return open_review(desk.ctx, owner.fingerprint).overview(contribution)


def test_sync_is_exact_incremental_and_reviewable_offline(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    data_dir: Path,
) -> None:
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("a", cids, 600))  # 1,200 entries: three pages

    first = _sync(desk)
    summary = _registry_summary(desk)
    assert first.new_entries == 1200 and first.models >= 1 and first.contributions == 2
    view = _review(desk)
    assert view.total_micro == first.new_reward_micro == summary["rewardMicro"]
    theirs = {c["contributionId"]: c["rewardMicro"] for c in summary["contributions"]["items"]}
    assert {c.contribution_id: c.reward_micro for c in view.by_contribution} == theirs
    assert {c.title for c in view.by_contribution} == {"alpha", "beta"}
    assert sum(v for _m, v in view.by_method) == view.total_micro
    assert [(name, demo) for _mid, name, demo, _v in view.by_model] == [("Sync Model", False)]
    # The day buckets agree with the ledger: every attribution counted once, every micro-unit.
    assert sum(e for _d, e, _r in view.daily) == 1200
    assert sum(r for _d, _e, r in view.daily) == view.total_micro

    again = _sync(desk)
    assert again.new_entries == 0 and _review(desk).total_micro == view.total_micro

    post_usage(registry, operator, usage_events("b", cids, 10))
    more = _sync(desk)
    assert more.new_entries == 20
    assert _review(desk).total_micro == _registry_summary(desk)["rewardMicro"]
    now = _registry_summary(desk)["contributions"]["items"]
    for c in now:  # per contribution too, reviewed one at a time
        assert _review(desk, c["contributionId"]).total_micro == c["rewardMicro"]

    # Offline: the registry is gone; the catalogue still answers, through the real CLI too.
    total = _review(desk).total_micro
    registry.kill(signal.SIGTERM)
    out = run_cli("--registry", registry.base_url, "rewards", "--json", data_dir=data_dir)
    assert out.code == 0, out.err
    body = json.loads(out.out)
    assert body["totalMicro"] == total and body["entries"] == 1220
    assert {c["title"] for c in body["contributions"]} == {"alpha", "beta"}
    text = run_cli("--registry", registry.base_url, "rewards", "1", data_dir=data_dir)
    assert text.code == 0 and "#1 alpha" in text.out and "Sync Model" in text.out
    missing = run_cli("--registry", registry.base_url, "rewards", "99", data_dir=data_dir)
    assert missing.code == 2 and "item #99 is not in the catalogue" in missing.err


def test_an_interrupted_sync_keeps_what_it_stored_and_continues_without_duplicates(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cids = accepted_items(desk, "gamma")
    post_usage(registry, operator, usage_events("c", cids, 1100))  # 2 entries each (two methods)
    real = usage_api.rewards_after
    calls = {"n": 0}

    def flaky(client: Any, after: str | None, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the connection drops while the second page is read
            raise RegistryUnavailable("registry unreachable")
        return real(client, after, **kw)

    monkeypatch.setattr("app.services.rewards.rewards_after", flaky)
    with pytest.raises(RegistryUnavailable):
        _sync(desk)
    kept = _review(desk)
    assert kept.entries == 500  # the first page, with the cursor after it
    monkeypatch.setattr("app.services.rewards.rewards_after", real)
    done = _sync(desk)
    assert done.new_entries == 1700  # 2,200 entries in all, 500 of them stored before
    assert _review(desk).entries == 2200
    assert _review(desk).total_micro == _registry_summary(desk)["rewardMicro"]
