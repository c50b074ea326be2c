"""Usage and rewards sync against the real registry, then offline review (real CLI too)."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.domain.errors import RegistryUnavailable
from app.registry_client import usage as usage_api
from app.services import rewards
from app.services.clients import make_client
from app.services.context import ServiceContext
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync, open_review
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    make_desk,
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
    start_registry,
)
from tests.integration.faults.proxy import Fault, FaultProxy
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import (
    accepted_items,
    age_usage_windows,
    one_window_a_read,
    post_usage,
    usage_events,
    window_reads,
)

pytestmark = pytest.mark.slow


def _registry_summary(desk: Desk) -> dict[str, Any]:
    client = make_client(desk.ctx)
    try:
        return client.http.json("GET", "/v1/me/summary", params={"limit": 1000})
    finally:
        client.close()


def _registry_entries(desk: Desk) -> tuple[int, int]:
    """(ledger entries, events they sum) of the desk's key at the registry: entries are
    aggregated per settlement, contribution, model, method and day, so their number depends on
    how the events were settled; the events they sum do not."""
    client = make_client(desk.ctx)
    entries = events = 0
    after: str | None = None
    try:
        while True:
            params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after else {})
            page = client.http.json("GET", "/v1/me/rewards", params=params)
            entries += len(page["items"])
            events += sum(i["events"] for i in page["items"])
            after = page["nextCursor"]
            if not page["hasMore"]:
                return entries, events
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
    post_usage(registry, operator, usage_events("a", cids, 600))  # 1,200 attributions

    first = _sync(desk)
    summary = _registry_summary(desk)
    entries, events = _registry_entries(desk)
    assert events == 1200
    assert first.new_entries == entries and first.models >= 1 and first.contributions == 2
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
    entries_now, events_now = _registry_entries(desk)
    assert events_now == 1220 and more.new_entries == entries_now - entries > 0
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
    assert body["totalMicro"] == total and body["entries"] == entries_now
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
    post_usage(registry, operator, usage_events("c", cids, 1100))  # 2 attributions each
    entries, events = _registry_entries(desk)
    assert events == 2200 and entries > 20
    real = usage_api.rewards_after
    calls = {"n": 0}

    def flaky(client: Any, after: str | None, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the connection drops while the second page is read
            raise RegistryUnavailable("registry unreachable")
        return real(client, after, limit=10)  # small pages: the entries are aggregated

    monkeypatch.setattr("app.services.rewards.rewards_after", flaky)
    with pytest.raises(RegistryUnavailable):
        _sync(desk)
    kept = _review(desk)
    assert kept.entries == 10  # the first page, with the cursor after it
    monkeypatch.setattr("app.services.rewards.rewards_after", real)
    done = _sync(desk)
    assert done.new_entries == entries - 10
    assert _review(desk).entries == entries
    assert _review(desk).total_micro == _registry_summary(desk)["rewardMicro"]


def _stored(desk: Desk) -> dict[str, Any]:
    """Everything the rewards cache holds, as comparable data."""
    from sqlalchemy import select

    from app.store.rewards_models import LedgerScope, RewardRecord, SyncCursor, UsageDay

    with desk.ctx.db.session() as s:
        return {
            "entries": sorted(
                tuple(r)
                for r in s.execute(
                    select(
                        LedgerScope.registry_key,
                        RewardRecord.cursor,
                        RewardRecord.contribution_id,
                        RewardRecord.amount_micro,
                    ).join(LedgerScope, LedgerScope.id == RewardRecord.scope)
                )  # fmt: skip
            ),
            "days": sorted(
                (d.registry_key, d.contribution_id, d.day, d.model_id, d.method, d.events)
                for d in s.scalars(select(UsageDay))
            ),
            "cursors": sorted(
                (c.registry_key, c.owner, c.stream, c.cursor) for c in s.scalars(select(SyncCursor))
            ),
        }


def test_the_same_registry_at_a_new_url_is_the_same_registry(
    desk: Desk, registry: RegistryProcess, operator: Contributor, tmp_path: Path
) -> None:
    cids = accepted_items(desk, "north", "south")
    post_usage(registry, operator, usage_events("n", cids, 30))
    first = _sync(desk)
    before = _review(desk)
    entries, events = _registry_entries(desk)
    assert events == 60
    assert first.new_entries == entries and before.registry_id is not None
    # a registry with a transparency log is known by its log key: origin "…/reg_<id>" + key
    assert before.registry_id.startswith("contributor-registry/reg_") and before.unit == "credits"

    # The registry moves (here: reached through another port); nothing is fetched twice and
    # the history, titles and days are all there under either address.
    relay = FaultProxy(registry.port)
    try:
        moved = ServiceContext(desk.ctx.data_dir, relay.url)
        owner = IdentityService(moved).current()
        assert owner is not None
        assert open_review(moved, owner.fingerprint).overview().entries == 0  # never seen
        client = make_client(moved)
        try:
            again = RewardsSync(moved, client, owner.fingerprint).run()
        finally:
            client.close()
        assert again.new_entries == 0 and again.contributions == 2
        there = open_review(moved, owner.fingerprint).overview()
        assert replace(there, registry="") == replace(_review(desk), registry="")
        assert there.total_micro == before.total_micro and there.daily == before.daily
        assert {c.title for c in there.by_contribution} == {"north", "south"}
        moved.close()
    finally:
        relay.close()


def _crafted(cid: str, **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "contributionId": cid,
        "bucket": "day",
        "since": fields.pop("since"),
        "until": fields.pop("until"),
        "series": [
            {
                "modelId": "sync-model",
                "method": "influence",
                "points": [
                    {"start": fields.pop("start"), "events": 1, "sharePpm": 1, "rewardMicro": 1}
                ],
            }
        ],
        "totals": {"events": 1, "rewardMicro": 1},
    }
    body.update(fields)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "craft",
    [
        "another contribution, everything",  # the answer names the other contribution
        "far future cursor",  # until 9999-12-31: the cursor would jump to the end of time
        "earlier since",  # a wider window than asked: deletes days never fetched again
        "point outside",  # a point before the window
    ],
)
@pytest.mark.parametrize("many", [False, True], ids=["one window a read", "many windows a read"])
def test_a_crafted_usage_window_is_refused_and_nothing_is_written(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    operator: Contributor,
    monkeypatch: pytest.MonkeyPatch,
    craft: str,
    many: bool,
) -> None:
    if not many:
        one_window_a_read(monkeypatch)
    relay = FaultProxy(registry.port)
    desk = make_desk(tmp_path, data_dir, relay.url)
    try:
        a, b = accepted_items(desk, "asked", "other")
        post_usage(registry, operator, usage_events("w", [a, b], 40))
        _sync(desk)
        kept = _stored(desk)
        assert any(d[1] == b for d in kept["days"])
        age_usage_windows(desk.ctx)  # read again (nothing new at the registry)
        today = date.today()
        since = (today - timedelta(days=89)).isoformat()
        body = {
            "another contribution, everything": _crafted(
                b, since="2000-01-01", until="9999-12-31", start="2000-01-02"
            ),
            "far future cursor": _crafted(
                a, since=since, until="9999-12-31", start=today.isoformat()
            ),
            "earlier since": _crafted(
                a, since="2000-01-01", until=today.isoformat(), start=today.isoformat()
            ),
            "point outside": _crafted(a, since=since, until=today.isoformat(), start="2001-01-01"),
        }[craft]
        path = f"/v1/contributions/{a}/usage"
        if many:  # the crafted window first, then b's (never checked: a's is refused first)
            other = {"contributionId": b, "since": since, "until": today.isoformat(), "series": []}
            body = json.dumps({"windows": [json.loads(body), other]}).encode()
            path = "/v1/me/usage-windows"
        fault = relay.add(Fault("answer", count=1, path_prefix=path, status=200, body=body))
        with pytest.raises(RegistryUnavailable) as refused:
            _sync(desk)
        assert fault.applied == 1
        assert f"usage of {a}" in (refused.value.hint or "")
        assert _stored(desk) == kept  # no day deleted or added, no cursor moved
    finally:
        desk.ctx.close()
        relay.close()


def test_a_registry_that_names_usage_windows_but_refuses_them_is_read_one_at_a_time(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    operator: Contributor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy in front of the registry that does not pass the many-window read on (404, as
    for any unknown route): the sync reads the windows one a request from then on, and stores
    what a sync straight from the registry stores."""
    monkeypatch.setattr(rewards, "USAGE_READ_BATCH", 2)  # several many-window reads
    monkeypatch.setattr(rewards, "USAGE_BATCHES_AHEAD", 1)  # one at a time: a refusal is seen
    relay = FaultProxy(registry.port)
    desk = make_desk(tmp_path, data_dir, relay.url)
    try:
        items = accepted_items(desk, "a", "b", "c", "d", "e")
        post_usage(registry, operator, usage_events("p", items, 60))
        refused = relay.add(
            Fault("answer", count=100, path_prefix="/v1/me/usage-windows", status=404)
        )
        _sync(desk)
        assert refused.applied == 1  # the first many-window read, never one after it
        reads = window_reads(seen.path for seen in relay.seen if not seen.fault)
        assert sorted(cid for cid, _since in reads) == sorted(items)
        kept = _stored(desk)
        assert {d[1] for d in kept["days"]} == set(items)
        assert len(kept["entries"]) == _registry_entries(desk)[0]
    finally:
        desk.ctx.close()
        relay.close()
    # Straight from the registry, every window read again (many to a read): nothing changes.
    direct = ServiceContext(data_dir, f"http://127.0.0.1:{registry.port}")
    try:
        age_usage_windows(direct)
        owner = IdentityService(direct).current()
        assert owner is not None
        client = make_client(direct)
        try:
            RewardsSync(direct, client, owner.fingerprint).run()
        finally:
            client.close()
        again = _stored(Desk(direct, tmp_path / "datasets"))
    finally:
        direct.close()
    assert again["days"] == kept["days"] and again["entries"] == kept["entries"]


def test_rows_stored_by_url_are_shown_then_moved_to_the_registry_identity(
    desk: Desk, registry: RegistryProcess, operator: Contributor
) -> None:
    """Migration 0004 keys existing rows `url:<URL>`; they show until the registry at that URL
    names itself, then move to its identity. Rows of an address never reached again (the demo
    registry's earlier ports) move when the registry's ledger has their contributions."""
    from sqlalchemy import update

    from app.store.rewards_models import (
        RegistryAddress,
        RewardRecord,
        SyncCursor,
        UsageDay,
        ensure_scope,
    )
    from app.store.rollups import ROLLUP_MODELS as ROLLUPS
    from app.store.rollups import LedgerRollupDay

    cids = accepted_items(desk, "east", "west")
    post_usage(registry, operator, usage_events("m", cids, 20))
    _sync(desk)
    synced = _review(desk)
    key = synced.registry_id
    assert key is not None
    old_port = "http://127.0.0.1:9"  # where the same registry was before (a restart)
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    with desk.ctx.db.session() as s:  # as the migration leaves rows synced by URL
        old_scope = ensure_scope(s, f"url:{old_port}", owner.fingerprint)
        for scoped in (RewardRecord, LedgerRollupDay):
            s.execute(update(scoped).values(scope=old_scope))
        for table in (UsageDay, SyncCursor, *ROLLUPS):
            if table is not LedgerRollupDay:
                s.execute(update(table).values(registry_key=f"url:{old_port}"))
        s.execute(update(RegistryAddress).values(registry_key=f"url:{old_port}", url=old_port))
        s.commit()
    offline = open_review(desk.ctx, owner.fingerprint, url=old_port).overview()
    assert offline.total_micro == synced.total_micro and offline.registry_id is None
    assert {c.title for c in offline.by_contribution} == {"east", "west"}

    again = _sync(desk)  # the current address: the whole ledger again, old rows adopted
    assert again.new_entries == synced.entries
    after = _review(desk)
    assert after.registry_id == key
    assert after.total_micro == synced.total_micro and after.entries == synced.entries
    assert after.daily == synced.daily
    assert {r[0] for r in _stored(desk)["entries"]} == {key}  # nothing left under the URL
    there = open_review(desk.ctx, owner.fingerprint, url=old_port).overview()
    assert replace(there, registry="") == replace(after, registry="")


def _entry(cursor: str, cid: str) -> dict[str, Any]:
    return {
        "cursor": cursor,
        "eventId": f"forged-{cursor}",
        "contributionId": cid,
        "modelId": "sync-model",
        "method": "influence",
        "amountMicro": 1,
        "at": "2026-12-01T00:00:00Z",
        "demo": False,
    }


@pytest.mark.parametrize(
    "craft",
    [
        "cursor jumps ahead",  # nothing new, but the cursor skips every future entry
        "entries go back",  # entries before the cursor asked for
        "cursor not the last entry's",
    ],
)
def test_a_crafted_rewards_page_is_refused_and_nothing_is_written(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    operator: Contributor,
    craft: str,
) -> None:
    relay = FaultProxy(registry.port)
    desk = make_desk(tmp_path, data_dir, relay.url)
    try:
        (a,) = accepted_items(desk, "ledger")
        post_usage(registry, operator, usage_events("p", [a], 10))
        _sync(desk)
        kept = _stored(desk)
        last = max(int(e[1]) for e in kept["entries"])
        page = {
            "cursor jumps ahead": {"items": [], "nextCursor": str(last + 10**9), "hasMore": False},
            "entries go back": {
                "items": [_entry(str(last - 1), a)],
                "nextCursor": str(last - 1),
                "hasMore": False,
            },
            "cursor not the last entry's": {
                "items": [_entry(str(last + 1), a)],
                "nextCursor": str(last + 50),
                "hasMore": False,
            },
        }[craft]
        fault = relay.add(
            Fault(
                "answer",
                count=1,
                path_prefix="/v1/me/rewards",
                status=200,
                body=json.dumps(page).encode(),
            )  # fmt: skip
        )
        with pytest.raises(RegistryUnavailable):
            _sync(desk)
        assert fault.applied == 1
        assert _stored(desk) == kept
    finally:
        desk.ctx.close()
        relay.close()


def test_events_awaiting_settlement_are_counted_in_the_sync_and_shown(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    """A registry whose settler runs elsewhere (here: not yet): the sync stores how many
    events the registry has not settled, the review and the CLI say so; after settlement the
    next sync brings the rewards and the count drops to 0."""
    import subprocess
    import sys

    import httpx

    operator = Contributor()
    registry = start_registry(tmp_path, "--operator-key", operator.public_key, "--no-settler")
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    try:
        cids = accepted_items(desk, "kelp")
        with httpx.Client(base_url=registry.base_url, timeout=30) as http:
            operator.sign_in(http)  # type: ignore[arg-type]
            http.post(
                "/v1/models", json={"id": "sync-model", "name": "S"}, headers=operator.headers
            )
            r = http.post(
                "/v1/usage", json={"events": usage_events("w", cids, 7)}, headers=operator.headers
            )
            assert len(r.json()["accepted"]) == 7
        first = _sync(desk)
        assert first.new_entries == 0 and _review(desk).unsettled_events == 7
        out = run_cli("--registry", registry.base_url, "rewards", data_dir=data_dir)
        assert out.code == 0 and "7 events awaiting settlement" in out.out, out.out
        done = subprocess.run(
            [sys.executable, "-m", "registry.cli", "settle", "--once", "--db", registry.db_url],
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert _sync(desk).new_entries > 0
        view = _review(desk)
        assert view.unsettled_events == 0 and view.total_micro == sum(
            (1_000 + 37 * i) * 7 // 10 for i in range(7)
        )
    finally:
        registry.kill(signal.SIGTERM)
