"""Contributor reads: usage series, rewards cursor paging, summary, and cross-tenant refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.signing.rotation import build_rotation
from registry.db.usage_models import LedgerEntry, UsageBucket
from registry.routes.reads import RewardsPage, UsageResponse, UsageWindows
from registry.usage_rules import MAX_BUCKET_EVENTS
from tests.support.registry_actors import Contributor
from tests.support.usage_data import UsageWorld, event, usage_world

DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(db_url, tmp_path) as w:
        w.client.post(
            "/v1/models", json={"id": "other-model", "name": "Other"}, headers=w.operator.headers
        )
        yield w


def test_usage_series_by_day_and_week(world: UsageWorld) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a)[0], world.ids_of(b)[0]
    events = []
    for d in range(10):  # one event per day for ten days, plus a second model on day 0
        events.append(
            event(f"d{d}", "test-model", [(ca, 3, "influence"), (cb, 1, "retrieval")],
                  fee_micro=1000, at=DAY + timedelta(days=d))
        )  # fmt: skip
    events.append(event("x", "other-model", [(ca, 1, "retrieval")], fee_micro=10, at=DAY))
    assert len(world.post_usage(events).json()["accepted"]) == 11
    url = f"/v1/contributions/{ca}/usage"
    r = world.client.get(
        url, params={"since": "2026-11-02", "until": "2026-11-11"}, headers=a.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket"] == "day"
    series = {(s["modelId"], s["method"]): s["points"] for s in body["series"]}
    assert set(series) == {("test-model", "influence"), ("other-model", "retrieval")}
    daily = series[("test-model", "influence")]
    assert [p["start"] for p in daily] == [str(DAY.date() + timedelta(days=d)) for d in range(10)]
    # pool 700 split 3:1 -> 525 for ca; its share is 750_000 ppm of each event.
    assert all(p == {**p, "events": 1, "rewardMicro": 525, "sharePpm": 750_000} for p in daily)
    assert series[("other-model", "retrieval")] == [
        {"start": "2026-11-02", "events": 1, "sharePpm": 1_000_000, "rewardMicro": 7}
    ]
    assert body["totals"] == {"events": 11, "rewardMicro": 10 * 525 + 7}

    week = world.client.get(
        url, params={"bucket": "week", "since": "2026-11-04", "until": "2026-11-11"},
        headers=a.headers,
    ).json()  # fmt: skip
    assert week["since"] == "2026-11-02"  # aligned to the Monday
    weekly = {(s["modelId"], s["method"]): s["points"] for s in week["series"]}
    assert [(p["start"], p["events"], p["rewardMicro"]) for p in
            weekly[("test-model", "influence")]] == [("2026-11-02", 7, 7 * 525),
                                                     ("2026-11-09", 3, 3 * 525)]  # fmt: skip

    narrow = world.client.get(
        url, params={"since": "2026-11-05", "until": "2026-11-06"}, headers=a.headers
    ).json()
    assert narrow["totals"]["events"] == 2
    # The msgspec-encoded answer is byte for byte what the documented pydantic model writes.
    for answer in (r, world.client.get(url, params={"bucket": "week"}, headers=a.headers)):
        assert answer.content == _as_pydantic_writes(answer.content)
    assert body["settledThrough"]["at"].endswith("Z")


def _as_pydantic_writes(content: bytes) -> bytes:
    return UsageResponse.model_validate_json(content).model_dump_json().encode()


def test_usage_range_is_bounded(world: UsageWorld) -> None:
    a = world.contributors[0]
    url = f"/v1/contributions/{world.ids_of(a)[0]}/usage"
    too_long = {"since": "2020-01-01", "until": "2026-01-01"}
    assert world.client.get(url, params=too_long, headers=a.headers).status_code == 422
    backwards = {"since": "2026-02-01", "until": "2026-01-01"}
    assert world.client.get(url, params=backwards, headers=a.headers).status_code == 422
    r = world.client.get(url, headers=a.headers).json()
    assert date.fromisoformat(r["until"]) - date.fromisoformat(r["since"]) == timedelta(days=89)


def test_nobody_else_reads_a_contributions_usage(world: UsageWorld) -> None:
    a, b = world.contributors
    ca = world.ids_of(a)[0]
    world.post_usage([event("e", "test-model", [(ca, 1, "influence")])])
    url = f"/v1/contributions/{ca}/usage"
    assert world.client.get(url, headers=a.headers).status_code == 200
    for who in (b, world.operator):
        r = world.client.get(url, headers=who.headers)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
    missing = world.client.get("/v1/contributions/c_doesnotexist/usage", headers=b.headers)
    assert missing.status_code == 404 and missing.json() == r.json()
    assert world.client.get(url).status_code == 401


def test_many_windows_in_one_read_are_the_single_reads(world: UsageWorld) -> None:
    """GET /v1/me/usage-windows answers, for each contribution named and in that order, what
    the one-contribution read answers (byte for byte, as the documented model writes it), and
    the health answer names it."""
    a, b = world.contributors
    ca = world.ids_of(a)
    events = [
        event(f"m{d}", "test-model", [(ca[d % 2], 2, "influence"), (ca[2], 1, "retrieval")],
              fee_micro=1000 + d, at=DAY + timedelta(days=d))
        for d in range(6)
    ]  # fmt: skip
    world.post_usage(events)
    assert "usage-windows" in world.client.get("/v1/health").json()["reads"]
    for bucket, since in (("day", "2026-11-01"), ("week", "2026-11-04")):
        params = {"since": since, "until": "2026-11-12", "bucket": bucket}
        order = [ca[2], ca[0], ca[1]]
        r = world.client.get(
            "/v1/me/usage-windows", params={**params, "contribution": order}, headers=a.headers
        )
        assert r.status_code == 200, r.text
        windows = r.json()["windows"]
        assert [w["contributionId"] for w in windows] == order
        for cid, window in zip(order, windows, strict=True):
            one = world.client.get(f"/v1/contributions/{cid}/usage", params=params,
                                   headers=a.headers).json()  # fmt: skip
            assert window == one
        assert sum(w["totals"]["events"] for w in windows) == 12
        assert r.content == UsageWindows.model_validate_json(r.content).model_dump_json().encode()


def test_many_windows_read_is_bounded_and_only_mine(world: UsageWorld) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a), world.ids_of(b)

    def read(ids: list[str], who: Contributor = a, **extra: str) -> Any:
        return world.client.get(
            "/v1/me/usage-windows", params={"contribution": ids, **extra}, headers=who.headers
        )

    assert read(ca).status_code == 200
    for refused in ([], [ca[0], ca[0]], ["not an id"], [f"c_{n}" for n in range(51)]):
        r = read(refused)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", refused
    assert read(ca, since="2026-02-01", until="2026-01-01").status_code == 422
    assert read(ca, since="2020-01-01", until="2026-01-01").status_code == 422
    # another's contribution among mine, or one that does not exist: 404 for the whole read,
    # the same answer either way
    theirs, missing = read([ca[0], cb[0]]), read([ca[0], "c_doesnotexist"])
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() and theirs.json()["error"]["code"] == "not_found"
    assert read(cb, who=world.operator).status_code == 404
    assert world.client.get("/v1/me/usage-windows", params={"contribution": ca}).status_code == 401


def _all_rewards(world: UsageWorld, who_headers: dict[str, str], after: str | None, limit: int):
    items, cursor = [], after
    while True:
        params = {"limit": limit} | ({"after": cursor} if cursor else {})
        page = world.client.get("/v1/me/rewards", params=params, headers=who_headers).json()
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            return items, cursor


def test_rewards_paging_returns_each_entry_once_and_only_mine(world: UsageWorld) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a), world.ids_of(b)
    batch = [
        event(f"e{i}", "test-model",
              [(ca[i % 3], 1 + i % 5, "influence"), (cb[0], 2, "retrieval")], fee_micro=1000 + i)
        for i in range(53)
    ]  # fmt: skip
    world.post_usage(batch)
    items, cursor = _all_rewards(world, a.headers, None, 7)
    with world.sessions() as s:
        mine = s.execute(
            select(LedgerEntry.id, LedgerEntry.amount_micro)
            .where(LedgerEntry.owner_fingerprint == a.fingerprint)
            .order_by(LedgerEntry.id)
        ).all()
    assert [(int(i["cursor"]), i["amountMicro"]) for i in items] == [tuple(m) for m in mine]
    assert {i["contributionId"] for i in items} <= set(ca)
    # One aggregated entry per contribution (one day, model and method), 53 events in all.
    assert len(items) == 3 and sum(i["events"] for i in items) == 53
    paged: list[str] = []
    for item in items:  # each entry's events, 4 at a time
        after: str | None = None
        while True:
            params = {"limit": 4} | ({"after": after} if after else {})
            url = f"/v1/me/rewards/{item['cursor']}/events"
            page = world.client.get(url, params=params, headers=a.headers).json()
            paged.extend(x["eventId"] for x in page["items"])
            if not page["hasMore"]:
                break
            after = page["nextCursor"]
    assert sorted(paged) == sorted(f"e{i}" for i in range(53))

    # Incremental sync: nothing new -> empty page, cursor unchanged; then only the new ones.
    page = world.client.get("/v1/me/rewards", params={"after": cursor}, headers=a.headers).json()
    assert page["items"] == [] and page["nextCursor"] == cursor and page["hasMore"] is False
    assert page["unsettledEvents"] == 0 and page["settledThrough"]["sequence"] == 53
    world.post_usage([event("late", "test-model", [(ca[0], 1, "exact-match")])])
    new, _ = _all_rewards(world, a.headers, cursor, 7)
    assert [(i["method"], i["events"]) for i in new] == [("exact-match", 1)]
    late = world.client.get(f"/v1/me/rewards/{new[0]['cursor']}/events", headers=a.headers)
    assert [x["eventId"] for x in late.json()["items"]] == ["late"]

    b_items, _ = _all_rewards(world, b.headers, None, 100)
    assert {i["contributionId"] for i in b_items} == {cb[0]}
    op_page = world.client.get("/v1/me/rewards", headers=world.operator.headers).json()
    assert op_page["items"] == []
    assert world.client.get("/v1/me/rewards").status_code == 401
    assert world.client.get("/v1/me/rewards?limit=10001", headers=a.headers).status_code == 422
    whole = world.client.get("/v1/me/rewards?limit=10000", headers=a.headers).json()
    assert len(whole["items"]) == 4 and whole["hasMore"] is False
    # The msgspec-encoded page is exactly what the documented pydantic model would write.
    assert RewardsPage.model_validate(whole).model_dump(mode="json") == whole
    assert whole["settledThrough"]["at"].endswith("Z") and whole["items"][0]["at"].endswith("Z")
    assert world.client.get("/v1/me/rewards?after=abc", headers=a.headers).status_code == 422


def test_cursor_paging_is_exact_while_ingestion_runs(world: UsageWorld) -> None:
    """A reader syncing during concurrent batches never skips or repeats an entry."""
    a = world.contributors[0]
    ca = world.ids_of(a)
    batches = 12

    def writer(n: int) -> None:
        for k in range(batches // 3):
            evs = [
                event(f"w{n}-{k}-{i}", "test-model", [(ca[i % 3], 1, "influence")], fee_micro=7)
                for i in range(20)
            ]
            assert len(world.post_usage(evs).json()["accepted"]) == 20

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    seen: list[int] = []
    cursor: str | None = None
    while any(t.is_alive() for t in threads):
        items, cursor = _all_rewards(world, a.headers, cursor, 13)
        seen.extend(int(i["cursor"]) for i in items)
    for t in threads:
        t.join()
    items, cursor = _all_rewards(world, a.headers, cursor, 13)
    seen.extend(int(i["cursor"]) for i in items)
    with world.sessions() as s:
        mine = s.execute(
            select(LedgerEntry.id, LedgerEntry.events)
            .where(LedgerEntry.owner_fingerprint == a.fingerprint)
            .order_by(LedgerEntry.id)
        ).all()
    # Every entry once, in order, none skipped; together they hold every event.
    assert seen == [m.id for m in mine]
    assert sum(m.events for m in mine) == batches * 20


def test_summary_sums_match_the_ledger(world: UsageWorld) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a), world.ids_of(b)
    world.post_usage(
        [
            event("e1", "test-model", [(ca[0], 1, "influence"), (cb[0], 1, "influence")],
                  fee_micro=1001),
            event("e2", "other-model", [(ca[1], 1, "retrieval"), (ca[0], 1, "exact-match")],
                  fee_micro=333),
            event("e3", "test-model", [(cb[1], 1, "influence")], fee_micro=50),
        ]
    )  # fmt: skip
    s = world.client.get("/v1/me/summary", headers=a.headers).json()
    rewards, _ = _all_rewards(world, a.headers, None, 1000)
    assert s["rewardMicro"] == sum(r["amountMicro"] for r in rewards) == 350 + 117 + 116
    assert s["events"] == 3
    per_c = {c["contributionId"]: c for c in s["contributions"]["items"]}
    assert set(per_c) == set(ca)  # all of mine, used or not
    assert per_c[ca[0]]["rewardMicro"] == 350 + 116 and per_c[ca[0]]["events"] == 2
    assert per_c[ca[2]] == {**per_c[ca[2]], "events": 0, "rewardMicro": 0}
    assert {m["modelId"]: m["rewardMicro"] for m in s["models"]} == {
        "test-model": 350,
        "other-model": 233,
    }
    page1 = world.client.get("/v1/me/summary?limit=2", headers=a.headers).json()
    assert page1["contributions"]["hasMore"] is True
    after = page1["contributions"]["nextCursor"]
    page2 = world.client.get(f"/v1/me/summary?limit=2&after={after}", headers=a.headers).json()
    got = [c["contributionId"] for c in page1["contributions"]["items"]] + [
        c["contributionId"] for c in page2["contributions"]["items"]
    ]
    assert got == sorted(ca)
    sb = world.client.get("/v1/me/summary", headers=b.headers).json()
    assert sb["rewardMicro"] == 350 + 35 and set(
        c["contributionId"] for c in sb["contributions"]["items"]
    ) == set(cb)
    so = world.client.get("/v1/me/summary", headers=world.operator.headers).json()
    assert so["rewardMicro"] == 0 and so["contributions"]["items"] == []


def test_rewards_follow_a_rotated_key(world: UsageWorld) -> None:
    """Entries credited before a key rotation stay readable (and exact) with the new key."""
    a = world.contributors[0]
    ca = world.ids_of(a)[0]
    world.post_usage([event("before", "test-model", [(ca, 1, "influence")], fee_micro=1000)])
    new = Contributor()
    envelope = build_rotation(a.key, new.key).to_dict()
    r = world.client.post("/v1/keys/rotate", json={"envelope": envelope}, headers=a.headers)
    assert r.status_code == 200, r.text
    new.sign_in(world.client)
    world.post_usage([event("after", "test-model", [(ca, 1, "retrieval")], fee_micro=2000)])
    items, _ = _all_rewards(world, new.headers, None, 10)
    assert [(i["method"], i["amountMicro"]) for i in items] == [
        ("influence", 700),
        ("retrieval", 1400),
    ]
    named = [
        world.client.get(f"/v1/me/rewards/{i['cursor']}/events", headers=new.headers).json()
        for i in items
    ]
    assert [[x["eventId"] for x in p["items"]] for p in named] == [["before"], ["after"]]
    usage = world.client.get(f"/v1/contributions/{ca}/usage", headers=new.headers).json()
    assert usage["totals"] == {"events": 2, "rewardMicro": 2100}
    summary = world.client.get("/v1/me/summary", headers=new.headers).json()
    assert summary["rewardMicro"] == 2100
    assert world.client.get("/v1/me/rewards", headers=a.headers).status_code == 401


def test_summary_sums_are_exact_beyond_64_bits(world: UsageWorld) -> None:
    """Each stored bucket is within its limits (at most 10^12 events, so at most 10^18 ppm of
    shares), but the sum over many buckets is not bounded: it is added up without overflow
    (SQLite's SUM raised 'integer overflow', a 500)."""
    a = world.contributors[0]
    ca = world.ids_of(a)[0]
    days = 12
    events, share = MAX_BUCKET_EVENTS, MAX_BUCKET_EVENTS * 1_000_000
    with world.sessions() as s:
        for d in range(days):
            s.add(
                UsageBucket(
                    contribution_id=ca,
                    bucket_start=date(2026, 1, 1) + timedelta(days=d),
                    model_id="test-model",
                    method="influence",
                    events=events,
                    share_ppm_sum=share,
                    reward_micro=7,
                )
            )
        s.commit()
    r = world.client.get("/v1/me/summary", headers=a.headers)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["events"] == days * events
    assert summary["rewardMicro"] == days * 7
    item = next(i for i in summary["contributions"]["items"] if i["contributionId"] == ca)
    assert item["sharePpm"] == days * share > 2**63
    assert summary["models"][0]["events"] == days * events
    usage = world.client.get(
        f"/v1/contributions/{ca}/usage?bucket=week&since=2026-01-01&until=2026-01-31",
        headers=a.headers,
    )
    assert usage.status_code == 200, usage.text
    points = usage.json()["series"][0]["points"]
    assert sum(p["sharePpm"] for p in points) == days * share
    assert usage.content == _as_pydantic_writes(usage.content)
