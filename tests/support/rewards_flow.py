"""Getting usage and rewards into a real registry for app tests: accepted contributions of a
desk, then usage posted by an operator (integration and GUI tests share these)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.registry_client.http import RetryPolicy, Timeouts
from tests.integration.faults.helpers import Desk
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.usage_data import settle

NOW = datetime.now(UTC)


def accepted_items(desk: Desk, *names: str) -> list[str]:
    """Catalogue, submit and upload one small dataset per name; their registry ids."""
    items = [desk.add(n, {f"{n}.csv": f"a,b\n{n},1\n".encode()}) for n in names]
    ids = [desk.submit(i).registry_id for i in items]
    # Not a fault test: the queue gets the app's own timeouts, so a loaded CI machine (a read
    # over the fault tests' 3 s) does not leave an item waiting for a retry.
    desk.queue(timeouts=Timeouts(), retry=RetryPolicy(attempts=5, base_s=0.05, cap_s=0.5)).run()
    states = {i: desk.state(i) for i in items}
    assert all(s == "accepted" for s in states.values()), states
    return [str(i) for i in ids]


def usage_events(tag: str, cids: list[str], n: int) -> list[dict[str, Any]]:
    """n events over the last 30 days, each attributing two contributions."""
    out = []
    for i in range(n):
        a, b = cids[i % len(cids)], cids[(i + 1) % len(cids)]
        out.append(
            {
                "eventId": f"{tag}-{i}",
                "modelId": "sync-model",
                "at": (NOW - timedelta(hours=7 * i % (30 * 24))).isoformat(),
                "feeMicro": 1_000 + 37 * i,
                "attributions": [
                    {"contributionId": a, "weight": 0.6, "method": "influence"},
                    {"contributionId": b, "weight": 0.4, "method": "retrieval"},
                ],
            }
        )
    return out


def post_usage(
    registry: RegistryProcess, operator: Contributor, events: list[dict[str, Any]]
) -> None:
    with httpx.Client(base_url=registry.base_url, timeout=30) as http:
        operator.sign_in(http)
        http.post(
            "/v1/models",
            json={"id": "sync-model", "name": "Sync Model"},
            headers=operator.headers,
        )
        for i in range(0, len(events), 500):
            r = http.post(
                "/v1/usage", json={"events": events[i : i + 500]}, headers=operator.headers
            )
            assert r.status_code == 200 and not r.json()["rejected"], r.text[:300]
        settle(http, operator.headers)


def entry_count(ctx: Any) -> int:
    """How many ledger entries the desk's key has at its registry (entries are aggregated per
    settlement, contribution, model, method and day: their number depends on how the events
    were settled, so tests ask the registry instead of counting events)."""
    from app.services.clients import make_client

    client = make_client(ctx)
    n, after = 0, None
    try:
        while True:
            params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after else {})
            page = client.http.json("GET", "/v1/me/rewards", params=params)
            n += len(page["items"])
            after = page["nextCursor"]
            if not page["hasMore"]:
                return n
    finally:
        client.close()


def age_summary_check(ctx: Any, by: timedelta = timedelta(days=1)) -> None:
    """Make the last match of the registry's summary look `by` older: the next sync reads
    and checks the summary again even with nothing new (app.services.transparency.sync)."""
    from sqlalchemy import select

    from app.services.transparency.sync import STREAM_SUMMARY_CHECKED
    from app.store.rewards_models import SyncCursor

    with ctx.db.session() as s:
        for row in s.scalars(select(SyncCursor).where(SyncCursor.stream == STREAM_SUMMARY_CHECKED)):
            row.synced_at = row.synced_at - by
        s.commit()


def age_usage_windows(ctx: Any, by: timedelta = timedelta(days=1)) -> None:
    """Make every stored usage window look `by` older: the next sync reads them all again
    (app.services.usage_plan re-reads windows older than a day)."""
    from sqlalchemy import select

    from app.store.rewards_models import SyncCursor
    from app.store.rollups import USAGE_STREAM_PREFIX

    with ctx.db.session() as s:
        for row in s.scalars(
            select(SyncCursor).where(SyncCursor.stream.startswith(USAGE_STREAM_PREFIX))
        ):
            row.synced_at = row.synced_at - by
        s.commit()


def one_window_a_read(monkeypatch: Any) -> None:
    """Syncs see the registry as one that serves no many-window read (its health answer
    names no `reads`): one request per usage window."""
    from app.services import registry_identity

    monkeypatch.setattr(registry_identity, "parse_reads", lambda _body: frozenset())


def window_reads(paths: Any) -> list[tuple[str, str]]:
    """(contribution id, `since`) of each usage window among these request paths (with their
    query), read alone or several in one read."""
    from urllib.parse import parse_qs, urlsplit

    reads: list[tuple[str, str]] = []
    for path in paths:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        since = query.get("since", [""])[0]
        if parts.path.startswith("/v1/contributions/") and parts.path.endswith("/usage"):
            reads.append((parts.path.split("/")[3], since))
        elif parts.path == "/v1/me/usage-windows":
            reads += [(cid, since) for cid in query.get("contribution", [])]
    return reads
