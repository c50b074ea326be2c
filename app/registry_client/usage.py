"""The registry's usage and rewards reads (docs/protocol.md, "Reads"), typed.

Like api.py, answers are checked here: an answer of the wrong shape is RegistryUnavailable
("unreadable") at the edge, never a half-applied sync. Money stays integer micro-units.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from app.domain.errors import RegistryUnavailable
from app.domain.text import display_text
from app.registry_client.api import (
    ID_PATTERN,
    MAX_PAGES,
    RegistryClient,
    registry_id,
    segment,
    too_many_pages,
)
from app.registry_client.http import UNREADABLE, ApiRefused

REWARDS_PAGE = 10_000  # ledger entries asked for per page (the reference registry's most)
OLD_REWARDS_PAGE = 1000  # the largest page of registries before larger pages were allowed
MODELS_PAGE = 200
MAX_WINDOWS = 50  # contributions per usage-windows read (the reference registry's most)
# The name a registry gives the usage-windows read in its health answer's `reads`.
USAGE_WINDOWS_READ = "usage-windows"
# Every integer from the registry is 0 <= n <= MAX_INT (what SQLite stores); sums of them are
# checked against the same bound before they are stored.
MAX_INT = 2**63 - 1
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
CURSOR_DIGITS = 19  # rewards cursors are decimal ledger ids (docs/protocol.md)
MAX_EVENT_ID_CHARS = 128
# A time in the form the registry's log writes (UTC, microseconds, "Z"): kept as received
# (`RewardEntry.at_text`), it is the log's text of the time and gives the stored text by
# slicing, with no formatting per entry.
_AT_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


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
    # `at` as received when it was in the log's form ("YYYY-MM-DDTHH:MM:SS.ffffffZ", the
    # text `at` formats to there), else ""
    at_text: str = ""


@dataclass(frozen=True, slots=True)
class RewardsPage:
    items: tuple[RewardEntry, ...]
    next_cursor: str | None
    has_more: bool
    # Events the registry received but has not settled yet (None: it does not say).
    unsettled_events: int | None = None
    # The usage-log position every event up to which the ledger holds (None: not said).
    settled_seq: int | None = None


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
    # The usage-log position every event up to which the buckets count (None: not said).
    settled_seq: int | None = None


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
    if value > MAX_INT:
        raise _bad(f"field {key!r} is larger than {MAX_INT:,} (2^63 - 1)")
    return int(value)


def _cursor(value: Any, key: str) -> str:
    if not isinstance(value, str) or not (
        value.isascii() and value.isdigit() and len(value) <= CURSOR_DIGITS
    ):
        raise _bad(f"field {key!r} is not a decimal cursor")
    return value


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_EVENT_ID_CHARS:
        raise _bad("field 'eventId' is not an event id")
    return value


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
        cursor=_cursor(body.get("cursor"), "cursor"),
        event_id=_event_id(body.get("eventId")),
        contribution_id=registry_id(body.get("contributionId"), "contributionId"),
        model_id=registry_id(body.get("modelId"), "modelId"),
        method=registry_id(body.get("method"), "method"),
        amount_micro=_count(body, "amountMicro"),
        at=_datetime(at := _field(body, "at", str), "at"),
        demo=bool(_field(body, "demo", bool)),
        at_text=at if _AT_CANONICAL.fullmatch(at) else "",
    )


def _usual_rewards(raw: list[dict[str, Any]]) -> tuple[RewardEntry, ...] | None:
    """The entries of a page whose every entry has the usual shape, checked in one loop
    (what parse_reward accepts, nothing else); None as soon as one has not: parse_reward
    then says what is wrong."""
    fromiso, is_id, canonical = (
        datetime.fromisoformat,
        ID_PATTERN.fullmatch,
        _AT_CANONICAL.fullmatch,
    )
    out: list[RewardEntry] = []
    add = out.append
    try:
        for i in raw:
            c, ev, cid, mid, method, amount, at, demo = (
                i["cursor"], i["eventId"], i["contributionId"], i["modelId"], i["method"],
                i["amountMicro"], i["at"], i["demo"],
            )  # fmt: skip
            if not (
                type(c) is str
                and c.isascii()
                and c.isdigit()
                and len(c) <= CURSOR_DIGITS
                and type(ev) is str
                and 1 <= len(ev) <= MAX_EVENT_ID_CHARS
                and type(cid) is str
                and type(mid) is str
                and type(method) is str
                and is_id(cid)
                and is_id(mid)
                and is_id(method)
                and type(amount) is int
                and 0 <= amount <= MAX_INT
                and type(at) is str
                and type(demo) is bool
            ):
                return None
            when = fromiso(at.replace("Z", "+00:00"))
            if when.tzinfo is None:
                return None
            text = at if canonical(at) else ""
            add(RewardEntry(c, ev, cid, mid, method, amount, when, demo, text))
    except (KeyError, ValueError):
        return None
    return tuple(out)


def rewards_after(
    client: RegistryClient, after: str | None, *, limit: int = REWARDS_PAGE
) -> RewardsPage:
    """One page of the caller's ledger entries after `after` (None: from the first)."""
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    try:
        body = client.http.json("GET", "/v1/me/rewards", params=params)
    except ApiRefused as exc:
        if exc.status != 422 or limit <= OLD_REWARDS_PAGE:
            raise
        # A registry that allows at most 1,000 entries a page: ask it for that.
        return rewards_after(client, after, limit=OLD_REWARDS_PAGE)
    raw = _items(body)
    if len(raw) > limit:
        raise _bad(f"{len(raw)} entries on a page of at most {limit}")
    items = _usual_rewards(raw)
    if items is None:
        items = tuple(parse_reward(i) for i in raw)
    nxt = body.get("nextCursor")
    if nxt is not None:
        nxt = _cursor(nxt, "nextCursor")
    # Cursors only grow: entries and nextCursor after the one asked for, in order.
    floor = int(after) if after is not None and after.isdigit() else -1
    for e in items:
        if int(e.cursor) <= floor:
            raise _bad("the entries are not in increasing cursor order after the one asked")
        floor = int(e.cursor)
    if nxt is not None and items and int(nxt) < floor:
        raise _bad("field 'nextCursor' is before the entries of its page")
    unsettled = body.get("unsettledEvents")
    if not (type(unsettled) is int and 0 <= unsettled <= MAX_INT):
        unsettled = None
    return RewardsPage(items, nxt, bool(body.get("hasMore")), unsettled, _settled_seq(body))


def usage_window(
    client: RegistryClient, contribution_id: str, *, since: date | None = None
) -> UsageWindow:
    """The day buckets of one of the caller's contributions from `since` (default: the
    registry's, 90 days) to today."""
    params: dict[str, Any] = {"bucket": "day"}
    if since is not None:
        params["since"] = since.isoformat()
    path = f"/v1/contributions/{segment(contribution_id)}/usage"
    return _window(client.http.json("GET", path, params=params))


def usage_windows(
    client: RegistryClient, contribution_ids: Sequence[str], *, since: date
) -> list[UsageWindow]:
    """`usage_window` of several of the caller's contributions (at most `MAX_WINDOWS`) in one
    read, from registries that serve it (`USAGE_WINDOWS_READ` in `client.reads`): one answer
    per contribution, in the order asked."""
    if not 1 <= len(contribution_ids) <= MAX_WINDOWS:
        raise ValueError(f"1 to {MAX_WINDOWS} contributions per read")
    params = {"contribution": list(contribution_ids), "bucket": "day", "since": since.isoformat()}
    body = client.http.json("GET", "/v1/me/usage-windows", params=params)
    raw = body.get("windows")
    if not isinstance(raw, list) or not all(isinstance(w, dict) for w in raw):
        raise _bad("field 'windows' is not a list of objects")
    if len(raw) != len(contribution_ids):
        raise _bad(f"{len(raw)} usage windows for {len(contribution_ids)} contributions asked")
    return [_window(w) for w in raw]


def _window(body: dict[str, Any]) -> UsageWindow:
    series = body.get("series")
    if not isinstance(series, list):
        raise _bad("field 'series' is not a list")
    points: list[UsagePoint] = []
    for s in series:
        if not isinstance(s, dict) or not isinstance(s.get("points"), list):
            raise _bad("a usage series is not an object with points")
        model_id = registry_id(s.get("modelId"), "modelId")
        method = registry_id(s.get("method"), "method")
        for p in s["points"]:
            if not isinstance(p, dict):
                raise _bad("a usage point is not an object")
            start, events, share, reward = (
                p.get("start"),
                p.get("events"),
                p.get("sharePpm"),
                p.get("rewardMicro"),
            )
            # The usual point, checked in one go; anything else takes the field-by-field
            # checks, which say what is wrong.
            if not (
                type(start) is str
                and type(events) is int
                and type(share) is int
                and type(reward) is int
                and 0 <= events <= MAX_INT
                and 0 <= share <= MAX_INT
                and 0 <= reward <= MAX_INT
            ):
                start, events = _field(p, "start", str), _count(p, "events")
                share, reward = _count(p, "sharePpm"), _count(p, "rewardMicro")
            day = _date(start, "start")
            points.append(UsagePoint(model_id, method, day, events, share, reward))
    return UsageWindow(
        contribution_id=_field(body, "contributionId", str),
        since=_date(_field(body, "since", str), "since"),
        until=_date(_field(body, "until", str), "until"),
        points=tuple(points),
        settled_seq=_settled_seq(body),
    )


def _settled_seq(body: dict[str, Any]) -> int | None:
    settled = body.get("settledThrough")
    seq = settled.get("sequence") if isinstance(settled, dict) else None
    return seq if type(seq) is int and 0 <= seq <= MAX_INT else None


def all_models(client: RegistryClient) -> Iterator[ModelInfo]:
    """Every model registered at the registry, page after page (at most MAX_PAGES: a
    registry that says `hasMore` forever is refused)."""
    cursor: str | None = None
    for _page in range(MAX_PAGES):
        params: dict[str, Any] = {"limit": MODELS_PAGE}
        if cursor is not None:
            params["after"] = cursor
        body = client.http.json("GET", "/v1/models", params=params)
        items = _items(body)
        if len(items) > MODELS_PAGE:
            raise _bad(f"{len(items)} models on a page of at most {MODELS_PAGE}")
        for m in items:
            yield ModelInfo(
                id=registry_id(m.get("id"), "id"),
                name=display_text(_field(m, "name", str)[:MAX_NAME_CHARS]),
                description=display_text(
                    str(m.get("description", ""))[:MAX_DESCRIPTION_CHARS], newlines=True
                ),
                demo=bool(m.get("demo", False)),
            )
        nxt = body.get("nextCursor")
        if not body.get("hasMore") or not isinstance(nxt, str) or nxt == cursor:
            return
        cursor = nxt
    raise too_many_pages("models")
