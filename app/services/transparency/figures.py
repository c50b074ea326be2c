"""The figures a registry reports besides its ledger entries (summary totals, per contribution
and per model; the usage series of each contribution), checked against what the stored entries
add up to. A figure that does not add up is a verification failure like a missing entry.

The registry settles usage in chunks, each writing its ledger entries and its day buckets in
one transaction, so every figure it reports is the sum of the entries of some prefix of
settlements. An aggregated entry names its settlement (event id "s<last usage-log position>");
an entry written before settlement counts from the start. A figure read at some moment counts
at least every settlement whose entries were stored before it was read, and at least up to the
`settledThrough` position it names; it may count a few more if the settler committed while it
was read. So a figure must equal the stored entries through that floor, or, after the entries
written since are fetched, through one of the later settlements: any other value (a changed
bucket, a dropped or invented entry) is a failure.

Event counts: a bucket counts every attribution settled into it, an entry only those that were
paid a non-zero amount, so a day's events must be at least what its verified entries' leaves
say they sum (not equal)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from app.registry_client.http import ApiRefused
from app.registry_client.usage import UsageWindow
from app.store.rewards_models import RewardRecord
from app.store.tlog_models import LogProof

if TYPE_CHECKING:
    from app.services.transparency.sync import LogSync

MAX_SUMMARY_PAGES = 100
MAX_LATER_SETTLEMENTS = 256  # later settlements tried for a figure read during a settlement
MAX_CELLS_IN_EVIDENCE = 20
_SETTLEMENT = re.compile(r"s([0-9]{1,18})")

Key = tuple[Hashable, ...]
Row = tuple[int, Key, int]  # (settlement position, figure key, amount)
CatchUp = Callable[[], None]


def settlement_of(event_id: str) -> int:
    """The usage-log position an entry's settlement ends at (0: written before settlement)."""
    m = _SETTLEMENT.fullmatch(event_id)
    return int(m.group(1)) if m else 0


def _sums(rows: Iterable[Row], through: int) -> dict[Key, int]:
    out: dict[Key, int] = defaultdict(int)
    for seq, key, amount in rows:
        if seq <= through:
            out[key] += amount
    return out


def _differs(actual: dict[Key, int], expected: dict[Key, int], scope: set[Key]) -> list[Key]:
    return [k for k in sorted(scope, key=repr) if actual.get(k, 0) != expected.get(k, 0)]


def matching_prefix(
    load: Callable[[], list[Row]],
    actual: dict[Key, int],
    scope: Callable[[dict[Key, int]], set[Key]],
    floor: int,
    catch_up: CatchUp,
) -> tuple[int | None, dict[Key, int], list[Row]]:
    """The settlement position through which the stored entries add up to `actual` on the
    keys of `scope(expected)` (None: none does), with those sums and the rows. The entries
    through `floor` are tried first; then the entries written since are fetched (`catch_up`)
    and each later settlement is tried in order."""
    rows = load()
    expected = _sums(rows, floor)
    if not _differs(actual, expected, scope(expected)):
        return floor, expected, rows
    catch_up()
    rows = sorted(load(), key=lambda r: r[0])
    later = sorted({seq for seq, _k, _a in rows if seq > floor})[:MAX_LATER_SETTLEMENTS]
    expected = _sums(rows, floor)
    i = 0
    for position in later:
        while i < len(rows) and rows[i][0] <= position:
            if rows[i][0] > floor:
                expected[rows[i][1]] += rows[i][2]
            i += 1
        if not _differs(actual, expected, scope(expected)):
            return position, dict(expected), rows
    return None, _sums(rows, floor), rows


def _cell(key: Key) -> dict[str, Any]:
    day, model_id, method = key
    return {"day": str(day), "modelId": model_id, "method": method}


def check_usage(sync: LogSync, window: UsageWindow, catch_up: CatchUp) -> None:
    """A contribution's usage window (rewards and events per day, model and method) against
    the stored entries of those days; before the window is stored."""
    cid = window.contribution_id
    events_of: dict[str, int] = {}  # cursor -> events its verified leaf sums

    def load() -> list[Row]:
        rows: list[Row] = []
        lowest = datetime.combine(window.since - timedelta(days=1), time())
        with sync.ctx.db.session() as s:
            found = s.execute(
                select(
                    RewardRecord.cursor, RewardRecord.event_id, RewardRecord.model_id,
                    RewardRecord.method, RewardRecord.amount_micro, RewardRecord.at,
                    LogProof.leaf,
                )
                .outerjoin(
                    LogProof,
                    (LogProof.registry_key == RewardRecord.registry_key)
                    & (LogProof.owner == RewardRecord.owner)
                    & (LogProof.cursor == RewardRecord.cursor),
                )
                .where(
                    RewardRecord.registry_key == sync.registry_key,
                    RewardRecord.owner == sync.owner,
                    RewardRecord.contribution_id == cid,
                    RewardRecord.at >= lowest,
                )
            ).all()  # fmt: skip
        for cursor, event_id, model_id, method, amount, at, leaf in found:
            day = _utc_day(at)
            if not window.since <= day <= window.until:
                continue
            rows.append((settlement_of(event_id), (day, model_id, method), int(amount)))
            if leaf is not None:
                events_of[cursor] = _leaf_events(leaf)
            events_of.setdefault(cursor, 0)
        return rows

    rewards: dict[Key, int] = {
        (p.start, p.model_id, p.method): p.reward_micro for p in window.points if p.reward_micro
    }
    floor = max(window.settled_seq or 0, stored_floor(sync))
    position, expected, _rows = matching_prefix(
        load, dict(rewards), lambda e: set(rewards) | set(e), floor, _refreshing(sync, catch_up)
    )
    if position is None:
        wrong = _differs(dict(rewards), expected, set(rewards) | set(expected))
        first = wrong[0]
        sync.fail(
            "usage",
            f"the registry's usage of contribution {cid} on {first[0]} ({first[1]}, {first[2]}) "
            f"earned {rewards.get(first, 0)} micro-units, its ledger entries add up to "
            f"{expected.get(first, 0)}",
            {
                "checkpoint": sync.note.decode(),
                "contributionId": cid,
                "since": window.since.isoformat(),
                "until": window.until.isoformat(),
                "settledThrough": window.settled_seq,
                "cells": [
                    {**_cell(k), "usageRewardMicro": rewards.get(k, 0),
                     "entriesRewardMicro": expected.get(k, 0)}
                    for k in wrong[:MAX_CELLS_IN_EVIDENCE]
                ],
            },
        )  # fmt: skip
    _check_events(sync, window, position, events_of)


def _check_events(
    sync: LogSync, window: UsageWindow, position: int, events_of: dict[str, int]
) -> None:
    """Each day's events at least what its verified entries (through `position`) sum."""
    if not any(events_of.values()):
        return
    with sync.ctx.db.session() as s:
        rows = s.execute(
            select(
                RewardRecord.cursor, RewardRecord.event_id, RewardRecord.model_id,
                RewardRecord.method, RewardRecord.at,
            ).where(
                RewardRecord.registry_key == sync.registry_key,
                RewardRecord.owner == sync.owner,
                RewardRecord.cursor.in_([c for c, n in events_of.items() if n]),
            )
        ).all()  # fmt: skip
    least: dict[Key, int] = defaultdict(int)
    for cursor, event_id, model_id, method, at in rows:
        if settlement_of(event_id) <= position:
            least[(_utc_day(at), model_id, method)] += events_of[cursor]
    served: dict[Key, int] = {(p.start, p.model_id, p.method): p.events for p in window.points}
    for key, n in sorted(least.items(), key=repr):
        if served.get(key, 0) < n:
            sync.fail(
                "usage",
                f"the registry's usage of contribution {window.contribution_id} on {key[0]} "
                f"({key[1]}, {key[2]}) counts {served.get(key, 0)} events, its verified "
                f"ledger entries alone sum {n}",
                {"checkpoint": sync.note.decode(), "contributionId": window.contribution_id,
                 "settledThrough": window.settled_seq,
                 "cells": [{**_cell(key), "usageEvents": served.get(key, 0),
                            "entriesEvents": n}]},
            )  # fmt: skip


def check_summary(sync: LogSync, catch_up: CatchUp) -> None:
    """The registry's summary (its total, per contribution and per model) against the stored
    entries, page by page (each page is read at its own moment)."""

    def load() -> list[Row]:
        with sync.ctx.db.session() as s:
            found = s.execute(
                select(
                    RewardRecord.event_id, RewardRecord.contribution_id, RewardRecord.model_id,
                    RewardRecord.amount_micro,
                ).where(
                    RewardRecord.registry_key == sync.registry_key,
                    RewardRecord.owner == sync.owner,
                )
            ).all()  # fmt: skip
        rows: list[Row] = []
        for event_id, cid, model_id, amount in found:
            seq, amount = settlement_of(event_id), int(amount)
            rows += [(seq, ("total",), amount), (seq, ("contribution", cid), amount),
                     (seq, ("model", model_id), amount)]  # fmt: skip
        return rows

    after: str | None = None
    for _page in range(MAX_SUMMARY_PAGES):
        params: dict[str, Any] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        floor = stored_floor(sync)
        try:
            body = sync.client.http.json("GET", "/v1/me/summary", params=params)
        except ApiRefused:
            return  # the registry has no summary for this key
        contributions = body.get("contributions") or {}
        actual: dict[Key, Any] = {("total",): body.get("rewardMicro")}
        for c in contributions.get("items") or []:
            actual[("contribution", c.get("contributionId"))] = c.get("rewardMicro")
        for m in body.get("models") or []:
            actual[("model", m.get("modelId"))] = m.get("rewardMicro")

        def scope(expected: dict[Key, int], actual: dict[Key, Any] = actual) -> set[Key]:
            models = {k for k in expected if k[0] == "model"}
            return set(actual) | models

        position, expected, _rows = matching_prefix(
            load, actual, scope, floor, _refreshing(sync, catch_up)
        )
        if position is None:
            key = _differs(actual, expected, scope(expected))[0]
            what = {"total": "total", "contribution": "total for contribution",
                    "model": "total for model"}[str(key[0])]  # fmt: skip
            name = "" if len(key) == 1 else f" {key[1]}"
            sync.fail(
                "summary",
                f"the registry's {what}{name} is {actual.get(key, 0)} micro-units, its ledger "
                f"entries add up to {expected.get(key, 0)}",
                {"checkpoint": sync.note.decode(), "figure": list(key),
                 "summaryRewardMicro": actual.get(key, 0),
                 "entriesRewardMicro": expected.get(key, 0),
                 **({"contributionId": key[1]} if key[0] == "contribution" else {})},
            )  # fmt: skip
        if not contributions.get("hasMore"):
            return
        after = contributions.get("nextCursor")


def stored_floor(sync: LogSync) -> int:
    """The latest settlement among the stored entries: a figure read after they were stored
    counts at least that far (kept on `sync` until entries are fetched again)."""
    if sync.settled_floor is None:
        with sync.ctx.db.session() as s:
            ids = s.scalars(
                select(RewardRecord.event_id).where(
                    RewardRecord.registry_key == sync.registry_key,
                    RewardRecord.owner == sync.owner,
                    RewardRecord.event_id.startswith("s"),
                )
            )
            sync.settled_floor = max((settlement_of(e) for e in ids), default=0)
    return sync.settled_floor


def _refreshing(sync: LogSync, catch_up: CatchUp) -> CatchUp:
    def run() -> None:
        catch_up()
        sync.settled_floor = None

    return run


def _utc_day(at: datetime) -> date:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC).date()


def _leaf_events(leaf: bytes) -> int:
    try:
        n = json.loads(leaf).get("events")
    except (ValueError, AttributeError):
        return 0
    return n if type(n) is int and n > 0 else 0
