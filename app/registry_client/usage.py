"""The registry's usage and rewards reads (docs/protocol.md, "Reads"), typed.

Like api.py, answers are checked here: an answer of the wrong shape is RegistryUnavailable
("unreadable") at the edge, never a half-applied sync. Money stays integer micro-units.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from app.domain.errors import RegistryUnavailable
from app.registry_client.api import RegistryClient
from app.registry_client.http import UNREADABLE

REWARDS_PAGE = 500
MODELS_PAGE = 200


@dataclass(frozen=True, slots=True)
class RewardEntry:
    """One contributor ledger entry: what one event paid one of the caller's contributions."""

    cursor: str
    event_id: str
    contribution_id: str
    model_id: str
    method: str
    amount_micro: int
    at: datetime
    demo: bool


@dataclass(frozen=True, slots=True)
class RewardsPage:
    items: tuple[RewardEntry, ...]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One day (or week) of one contribution's usage by one model and method."""

    model_id: str
    method: str
    start: date
    events: int
    share_ppm: int
    reward_micro: int


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """The registry's answer for one contribution: its buckets in [since, until]."""

    contribution_id: str
    since: date
    until: date
    points: tuple[UsagePoint, ...]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    name: str
    description: str
    demo: bool


def _bad(why: str) -> RegistryUnavailable:
    return RegistryUnavailable(UNREADABLE, hint=why)


def _field(body: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    # bool is an int subclass: never accept it where a number is expected.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad(f"field {key!r} missing or of the wrong type")
    return value


def _count(body: dict[str, Any], key: str) -> int:
    value = _field(body, key, int)
    if value < 0:
        raise _bad(f"field {key!r} is negative")
    return int(value)


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _bad("field 'items' is not a list of objects")
    return items


def _datetime(text: str, key: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"field {key!r} is not a timestamp") from None
    if value.tzinfo is None:
        raise _bad(f"field {key!r} has no timezone")
    return value


def _date(text: str, key: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(f"field {key!r} is not a date") from None


def parse_reward(body: dict[str, Any]) -> RewardEntry:
    return RewardEntry(
        cursor=_field(body, "cursor", str),
        event_id=_field(body, "eventId", str),
        contribution_id=_field(body, "contributionId", str),
        model_id=_field(body, "modelId", str),
        method=_field(body, "method", str),
        amount_micro=_count(body, "amountMicro"),
        at=_datetime(_field(body, "at", str), "at"),
        demo=bool(_field(body, "demo", bool)),
    )


def rewards_after(
    client: RegistryClient, after: str | None, *, limit: int = REWARDS_PAGE
) -> RewardsPage:
    """One page of the caller's ledger entries after `after` (None: from the first)."""
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    body = client.http.json("GET", "/v1/me/rewards", params=params)
    items = tuple(parse_reward(i) for i in _items(body))
    nxt = body.get("nextCursor")
    if nxt is not None and not isinstance(nxt, str):
        raise _bad("field 'nextCursor' is not text")
    return RewardsPage(items, nxt, bool(body.get("hasMore")))


def usage_window(
    client: RegistryClient, contribution_id: str, *, since: date | None = None
) -> UsageWindow:
    """The day buckets of one of the caller's contributions from `since` (default: the
    registry's, 90 days) to today."""
    params: dict[str, Any] = {"bucket": "day"}
    if since is not None:
        params["since"] = since.isoformat()
    body = client.http.json("GET", f"/v1/contributions/{contribution_id}/usage", params=params)
    series = body.get("series")
    if not isinstance(series, list):
        raise _bad("field 'series' is not a list")
    points: list[UsagePoint] = []
    for s in series:
        if not isinstance(s, dict) or not isinstance(s.get("points"), list):
            raise _bad("a usage series is not an object with points")
        model_id, method = _field(s, "modelId", str), _field(s, "method", str)
        for p in s["points"]:
            if not isinstance(p, dict):
                raise _bad("a usage point is not an object")
            points.append(
                UsagePoint(
                    model_id,
                    method,
                    _date(_field(p, "start", str), "start"),
                    _count(p, "events"),
                    _count(p, "sharePpm"),
                    _count(p, "rewardMicro"),
                )
            )
    return UsageWindow(
        contribution_id=_field(body, "contributionId", str),
        since=_date(_field(body, "since", str), "since"),
        until=_date(_field(body, "until", str), "until"),
        points=tuple(points),
    )


def all_models(client: RegistryClient) -> Iterator[ModelInfo]:
    """Every model registered at the registry, page after page."""
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": MODELS_PAGE}
        if cursor is not None:
            params["after"] = cursor
        body = client.http.json("GET", "/v1/models", params=params)
        for m in _items(body):
            yield ModelInfo(
                id=_field(m, "id", str),
                name=_field(m, "name", str),
                description=str(m.get("description", "")),
                demo=bool(m.get("demo", False)),
            )
        nxt = body.get("nextCursor")
        if not body.get("hasMore") or not isinstance(nxt, str) or nxt == cursor:
            return
        cursor = nxt
