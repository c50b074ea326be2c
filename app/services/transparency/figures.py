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

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Integer, case, cast, func, select

from app.registry_client.http import ApiRefused
from app.registry_client.usage import UsageWindow
from app.store.rewards_models import RewardRecord
from app.store.rollups import LedgerRollupTotal

if TYPE_CHECKING:
    from app.services.transparency.session import SyncSession

MAX_SUMMARY_PAGES = 100
MAX_LATER_SETTLEMENTS = 256  # later settlements tried for a figure read during a settlement
MAX_CELLS_IN_EVIDENCE = 20
STORED_DAYS_CHUNK = 50  # contributions whose stored days `StoredDays` reads at once

Key = tuple[Hashable, ...]
Row = tuple[int, Key, int]  # (settlement position, figure key, amount)
CatchUp = Callable[[], None]


def settlement_of(event_id: str) -> int:
    """The usage-log position an entry's settlement ends at (0: written before settlement):
    the number of an event id "s" followed by 1 to 18 ASCII digits (string methods, not a
    pattern: called once per entry of a sync)."""
    if 2 <= len(event_id) <= 19 and event_id[0] == "s":
        digits = event_id[1:]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return 0


def _sums(rows: Iterable[Row], through: int) -> dict[Key, int]:
    out: dict[Key, int] = defaultdict(int)
    for seq, key, amount in rows:
        if seq <= through:
            out[key] += amount
    return out


def _differs(actual: dict[Key, Any], expected: dict[Key, int], scope: set[Key]) -> list[Key]:
    """The keys of `scope` whose sums differ, in a stable order (sorted only when some do:
    the usual answer is none)."""
    wrong = [k for k in scope if actual.get(k, 0) != expected.get(k, 0)]
    return sorted(wrong, key=repr) if wrong else wrong


def matching_prefix(
    totals: Callable[[], dict[Key, int]],
    load: Callable[[], list[Row]],
    actual: dict[Key, Any],
    scope: Callable[[dict[Key, int]], set[Key]],
    floor_of: Callable[[], int],
    catch_up: CatchUp,
) -> tuple[int | None, dict[Key, int]]:
    """The settlement position through which the stored entries add up to `actual` on the
    keys of `scope(expected)` (None: none does), with those sums (-1: all stored entries).
    The figure counts at least every stored entry, so their `totals` are tried first. Then
    the floor is taken (`floor_of`: the position every stored entry is at or before, or a
    later one the figure names), the entries written since are fetched (`catch_up`), and
    their `load`ed rows are summed through the floor and through each later settlement."""
    expected = totals()
    if not _differs(actual, expected, scope(expected)):
        return -1, expected
    floor = floor_of()
    catch_up()
    rows = sorted(load(), key=lambda r: r[0])
    later = sorted({seq for seq, _k, _a in rows if seq > floor})[:MAX_LATER_SETTLEMENTS]
    expected = _sums(rows, floor)
    i = next((n for n, r in enumerate(rows) if r[0] > floor), len(rows))
    for position in [floor, *later]:
        while i < len(rows) and rows[i][0] <= position:
            expected[rows[i][1]] += rows[i][2]
            i += 1
        if not _differs(actual, expected, scope(expected)):
            return position, dict(expected)
    return None, _sums(rows, floor)


_ROLLUP_DAYS = (
    "SELECT day, model_id, method, amount_micro FROM ledger_rollup_days "
    "WHERE scope = ? AND contribution_id = ? AND day >= ? AND day <= ?"
)
# The events the verified leaves of one contribution sum per day, model and method, of the
# entries through settlement position ? (all: -1).
_LEAF_EVENTS = (
    "SELECT day, model_id, method, sum(events) FROM log_leaf_events "
    "WHERE scope = ? AND contribution_id = ? AND day >= ? AND day <= ? "
    "AND (? < 0 OR settlement <= ?) GROUP BY day, model_id, method"
)


class StoredDays:
    """What `check_usage` compares the windows of one sync with, read for many contributions
    at once: the ledger rollup's rewards and the verified leaves' events (all settlements) per
    day, model and method, from each window's first day on. Read for `STORED_DAYS_CHUNK`
    contributions at a time, in the order their windows are checked (two statements a chunk
    instead of two a window); `forget` after entries were fetched again (the next window's
    chunk is then read anew)."""

    def __init__(self, sync: SyncSession, sinces: Sequence[tuple[str, date]]) -> None:
        self._sync = sync
        self._chunks = [
            sinces[i : i + STORED_DAYS_CHUNK] for i in range(0, len(sinces), STORED_DAYS_CHUNK)
        ]
        # contribution -> (its chunk, its window's first day)
        self._planned = {cid: (n // STORED_DAYS_CHUNK, s) for n, (cid, s) in enumerate(sinces)}
        self._loaded: int | None = None
        self._rewards: dict[str, dict[Key, int]] = {}
        self._events: dict[str, dict[Key, int]] = {}

    def forget(self) -> None:
        self._loaded = None

    def rewards(self, contribution_id: str, since: date, until: date) -> dict[Key, int] | None:
        """The rollup's rewards of these days (None: this contribution's days from `since`
        are not among those planned)."""
        if not self._ready(contribution_id, since):
            return None
        return _between(self._rewards.get(contribution_id, {}), since, until)

    def events(self, contribution_id: str, since: date, until: date) -> dict[Key, int] | None:
        """The verified leaves' events of these days, all settlements (None: as `rewards`)."""
        if not self._ready(contribution_id, since):
            return None
        return _between(self._events.get(contribution_id, {}), since, until)

    def _ready(self, contribution_id: str, since: date) -> bool:
        planned = self._planned.get(contribution_id)
        if planned is None or since < planned[1]:
            return False
        n = planned[0]
        if n != self._loaded:
            self._load(n)
        return True

    def _load(self, n: int) -> None:
        chunk = self._chunks[n]
        ids = [cid for cid, _s in chunk]
        marks = ", ".join("?" * len(ids))
        args = (self._sync.scope, *ids, min(s for _c, s in chunk).isoformat())
        where = f"WHERE scope = ? AND contribution_id IN ({marks}) AND day >= ?"
        with self._sync.ctx.db.session() as s:
            run = s.connection().exec_driver_sql
            rewards = run(
                "SELECT contribution_id, day, model_id, method, amount_micro "
                f"FROM ledger_rollup_days {where}",
                args,
            ).all()
            events = run(
                "SELECT contribution_id, day, model_id, method, sum(events) "
                f"FROM log_leaf_events {where} GROUP BY contribution_id, day, model_id, method",
                args,
            ).all()
        self._rewards, self._events = _by_contribution(rewards), _by_contribution(events)
        self._loaded = n


def _by_contribution(rows: Iterable[Any]) -> dict[str, dict[Key, int]]:
    out: dict[str, dict[Key, int]] = defaultdict(dict)
    days: dict[str, date] = {}
    for cid, d, m, k, v in rows:
        if v is None:
            continue
        day = days.get(d)
        if day is None:
            day = days[d] = date.fromisoformat(d)
        cells = out[cid]
        cells[(day, m, k)] = cells.get((day, m, k), 0) + int(v)
    return out


def _between(cells: dict[Key, int], since: date, until: date) -> dict[Key, int]:
    return {k: v for k, v in cells.items() if since <= k[0] <= until}  # type: ignore[operator]


def _cell(key: Key) -> dict[str, Any]:
    day, model_id, method = key
    return {"day": str(day), "modelId": model_id, "method": method}


def _settlement_sql() -> ColumnElement[int]:
    """settlement_of(event_id) in SQL."""
    digits = func.substr(RewardRecord.event_id, 2)
    return case(
        (
            RewardRecord.event_id.op("GLOB", is_comparison=True)("s[0-9]*")
            & ~digits.op("GLOB", is_comparison=True)("*[^0-9]*"),
            cast(digits, Integer),
        ),
        else_=0,
    )


def check_usage(sync: SyncSession, window: UsageWindow, catch_up: CatchUp) -> None:
    """A contribution's usage window (rewards and events per day, model and method) against
    the stored entries of those days; before the window is stored."""
    cid = window.contribution_id
    day = func.date(RewardRecord.at)
    mine = (
        (RewardRecord.scope == sync.scope)
        & (RewardRecord.contribution_id == cid)
        & (RewardRecord.at >= datetime.combine(window.since, time()))
        & (RewardRecord.at < datetime.combine(window.until + timedelta(days=1), time()))
    )

    def totals() -> dict[Key, int]:
        # the ledger rollup per UTC day (the stored time's date), kept with the entries; one
        # plain read (days are ISO text, as SQLAlchemy's SQLite Date stores them)
        if sync.usage_days is not None:
            read = sync.usage_days.rewards(cid, window.since, window.until)
            if read is not None:
                return read
        with sync.ctx.db.session() as s:
            found = s.connection().exec_driver_sql(
                _ROLLUP_DAYS,
                (sync.scope, cid, window.since.isoformat(), window.until.isoformat()),
            ).all()  # fmt: skip
        out: dict[Key, int] = defaultdict(int)
        for d, m, k, v in found:
            out[(date.fromisoformat(d), m, k)] += int(v)
        return dict(out)

    def load() -> list[Row]:
        with sync.ctx.db.session() as s:
            found = s.execute(
                select(RewardRecord.event_id, day, RewardRecord.model_id, RewardRecord.method,
                       func.sum(RewardRecord.amount_micro))
                .where(mine)
                .group_by(RewardRecord.event_id, day, RewardRecord.model_id, RewardRecord.method)
            ).all()  # fmt: skip
        return [
            (settlement_of(e), (date.fromisoformat(d), m, k), int(v)) for e, d, m, k, v in found
        ]

    rewards: dict[Key, int] = {
        (p.start, p.model_id, p.method): p.reward_micro for p in window.points if p.reward_micro
    }
    position, expected = matching_prefix(
        totals,
        load,
        rewards,
        lambda e: set(rewards) | set(e),
        lambda: max(window.settled_seq or 0, stored_floor(sync)),
        _refreshing(sync, catch_up),
    )
    if position is None:
        wrong = _differs(rewards, expected, set(rewards) | set(expected))
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
    _check_events(sync, window, mine, day, position)


def _check_events(
    sync: SyncSession, window: UsageWindow, mine: Any, day: Any, position: int
) -> None:
    """Each day's events at least what its verified entries (through `position`; all: -1)
    sum."""
    least: dict[Key, int] | None = None
    if position < 0 and sync.usage_days is not None:
        least = sync.usage_days.events(window.contribution_id, window.since, window.until)
    if least is None:
        with sync.ctx.db.session() as s:  # one plain read, like the rollup's
            found = s.connection().exec_driver_sql(
                _LEAF_EVENTS,
                (sync.scope, window.contribution_id, window.since.isoformat(),
                 window.until.isoformat(), position, position),
            ).all()  # fmt: skip
        least = {(date.fromisoformat(d), m, k): int(n) for d, m, k, n in found if n is not None}
    served: dict[Key, int] = {(p.start, p.model_id, p.method): p.events for p in window.points}
    short = [(key, n) for key, n in least.items() if served.get(key, 0) < n]
    for key, n in sorted(short, key=repr):  # the first in a stable order (usually none)
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


def check_summary(sync: SyncSession, catch_up: CatchUp) -> None:
    """The registry's summary (its total, per contribution and per model) against the stored
    entries, page by page (each page is read at its own moment)."""
    mine = RewardRecord.scope == sync.scope

    def spread(found: Iterable[Any]) -> list[Row]:
        rows: list[Row] = []
        for seq, cid, model_id, amount in found:
            rows += [(seq, ("total",), int(amount)), (seq, ("contribution", cid), int(amount)),
                     (seq, ("model", model_id), int(amount))]  # fmt: skip
        return rows

    def totals() -> dict[Key, int]:
        # the ledger rollup holds these sums per contribution, model and method, kept in the
        # transaction that stores the entries (a few rows, not every entry)
        with sync.ctx.db.session() as s:
            found = s.execute(
                select(LedgerRollupTotal.contribution_id, LedgerRollupTotal.model_id,
                       func.sum(LedgerRollupTotal.amount_micro))
                .where(LedgerRollupTotal.registry_key == sync.registry_key,
                       LedgerRollupTotal.owner == sync.owner)
                .group_by(LedgerRollupTotal.contribution_id, LedgerRollupTotal.model_id)
            ).all()  # fmt: skip
        return _sums(spread((0, c, m, v) for c, m, v in found), 0)

    def load() -> list[Row]:
        with sync.ctx.db.session() as s:
            found = s.execute(
                select(RewardRecord.event_id, RewardRecord.contribution_id, RewardRecord.model_id,
                       func.sum(RewardRecord.amount_micro))
                .where(mine)
                .group_by(RewardRecord.event_id, RewardRecord.contribution_id,
                          RewardRecord.model_id)
            ).all()  # fmt: skip
        return spread((settlement_of(e), c, m, v) for e, c, m, v in found)

    after: str | None = None
    for _page in range(MAX_SUMMARY_PAGES):
        params: dict[str, Any] = {"limit": 1000}
        if after is not None:
            params["after"] = after
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

        position, expected = matching_prefix(
            totals, load, actual, scope, lambda: stored_floor(sync), _refreshing(sync, catch_up)
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


def stored_floor(sync: SyncSession) -> int:
    """The latest settlement among the stored entries: a figure read after they were stored
    counts at least that far (kept on `sync` until entries are fetched again)."""
    if sync.settled_floor is None:
        with sync.ctx.db.session() as s:
            latest = s.scalar(
                select(func.max(_settlement_sql())).where(RewardRecord.scope == sync.scope)
            )
        sync.settled_floor = int(latest or 0)
    return sync.settled_floor


def _refreshing(sync: SyncSession, catch_up: CatchUp) -> CatchUp:
    def run() -> None:
        catch_up()
        sync.settled_floor = None
        if sync.usage_days is not None:
            sync.usage_days.forget()

    return run
