"""Rollups of the synced rewards copy: the ledger and the usage days pre-summed, so the
Rewards page, `contributor-desk rewards` and the CSV read a few thousand rows whatever the
number of events synced (a million events can be millions of ledger entries and usage days).

Kept per registry key and identity (owner), in the same transaction as the rows they sum:
- `ledger_rollup_days`: ledger entries per UTC day (the stored timestamp's date) ×
  contribution × model × method: amount and entry count;
- `ledger_rollup_totals`: the same over all days (the overview's totals);
- `usage_rollup_days`: the usage days of the contributions whose usage the owner syncs,
  per day × model × method, summed over those contributions;
- `usage_rollup_contributions`: the same per contribution × day (cumulative earned, ranking).

Usage rollups keep `rows` (how many usage days are summed in): a rollup row goes when its
last usage day does, so a group exists exactly when a GROUP BY over the days would show it.
`rebuild` recomputes every rollup of a registry key from the rows (after a re-key); the
migration that adds the tables fills them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Integer, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.store.json_rows import encode, insert_json
from app.store.models import Base
from app.store.rewards_models import (
    SCOPES_OF_KEY,
    ContributionCol,
    DayCol,
    MethodCol,
    ModelCol,
    OwnerCol,
    RegistryKeyCol,
    SumCol,
    SyncCursor,
    ensure_scope,
)

USAGE_STREAM_PREFIX = "usage:"  # sync cursor stream of one contribution's usage


class LedgerRollupDay(Base):
    """Ledger entries of one UTC day, contribution, model and method, of one ledger scope
    (registry key and owner: app.store.rewards_models.LedgerScope; migration 0015)."""

    __tablename__ = "ledger_rollup_days"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree: the key (migration 0013)

    scope: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    contribution_id: Mapped[ContributionCol]
    day: Mapped[DayCol]
    model_id: Mapped[ModelCol]
    method: Mapped[MethodCol]
    amount_micro: Mapped[SumCol]
    entries: Mapped[SumCol]


class LedgerRollupTotal(Base):
    """Ledger entries of one contribution, model and method, all days."""

    __tablename__ = "ledger_rollup_totals"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree: the key (migration 0013)

    registry_key: Mapped[RegistryKeyCol]
    owner: Mapped[OwnerCol]
    contribution_id: Mapped[ContributionCol]
    model_id: Mapped[ModelCol]
    method: Mapped[MethodCol]
    amount_micro: Mapped[SumCol]
    entries: Mapped[SumCol]


class UsageRollupDay(Base):
    """Usage of all the owner's synced contributions on one day, by one model and method."""

    __tablename__ = "usage_rollup_days"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree: the key (migration 0013)

    registry_key: Mapped[RegistryKeyCol]
    owner: Mapped[OwnerCol]
    day: Mapped[DayCol]
    model_id: Mapped[ModelCol]
    method: Mapped[MethodCol]
    rows: Mapped[SumCol]
    events: Mapped[SumCol]
    share_ppm: Mapped[SumCol]
    reward_micro: Mapped[SumCol]


class UsageRollupContribution(Base):
    """Usage of one contribution on one day, all models and methods."""

    __tablename__ = "usage_rollup_contributions"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree: the key (migration 0013)

    registry_key: Mapped[RegistryKeyCol]
    owner: Mapped[OwnerCol]
    contribution_id: Mapped[ContributionCol]
    day: Mapped[DayCol]
    rows: Mapped[SumCol]
    events: Mapped[SumCol]
    share_ppm: Mapped[SumCol]
    reward_micro: Mapped[SumCol]


ROLLUP_TABLES = (
    "ledger_rollup_days",
    "ledger_rollup_totals",
    "usage_rollup_days",
    "usage_rollup_contributions",
)

# Recomputing the rollups from the rows (":key" filters one registry key). The usage joins
# start from the sync cursors so each contribution's days are found by their primary key.
REBUILD_SQL = (
    """INSERT INTO ledger_rollup_days (scope, contribution_id, day, model_id, method,
         amount_micro, entries)
       SELECT r.scope, r.contribution_id, substr(r.at, 1, 10), r.model_id, r.method,
              sum(r.amount_micro), count(*)
       FROM reward_entries AS r JOIN ledger_scopes AS sc ON sc.id = r.scope
       WHERE {entries_where}
       GROUP BY r.scope, r.contribution_id, substr(r.at, 1, 10), r.model_id, r.method""",
    """INSERT INTO ledger_rollup_totals (registry_key, owner, contribution_id, model_id,
         method, amount_micro, entries)
       SELECT sc.registry_key, sc.owner, d.contribution_id, d.model_id, d.method,
              sum(d.amount_micro), sum(d.entries)
       FROM ledger_rollup_days AS d JOIN ledger_scopes AS sc ON sc.id = d.scope
       WHERE {entries_where}
       GROUP BY d.scope, d.contribution_id, d.model_id, d.method""",
    """INSERT INTO usage_rollup_days (registry_key, owner, day, model_id, method, rows, events,
         share_ppm, reward_micro)
       SELECT c.registry_key, c.owner, u.day, u.model_id, u.method, count(*), sum(u.events),
              sum(u.share_ppm), sum(u.reward_micro)
       FROM sync_cursors AS c CROSS JOIN usage_days AS u
         ON u.registry_key = c.registry_key AND u.contribution_id = substr(c.stream, 7)
       WHERE substr(c.stream, 1, 6) = 'usage:' AND {cursor_where}
       GROUP BY c.registry_key, c.owner, u.day, u.model_id, u.method""",
    """INSERT INTO usage_rollup_contributions (registry_key, owner, contribution_id, day, rows,
         events, share_ppm, reward_micro)
       SELECT c.registry_key, c.owner, u.contribution_id, u.day, count(*), sum(u.events),
              sum(u.share_ppm), sum(u.reward_micro)
       FROM sync_cursors AS c CROSS JOIN usage_days AS u
         ON u.registry_key = c.registry_key AND u.contribution_id = substr(c.stream, 7)
       WHERE substr(c.stream, 1, 6) = 'usage:' AND {cursor_where}
       GROUP BY c.registry_key, c.owner, u.contribution_id, u.day""",
)


def rebuild_statements(*, one_key: bool) -> list[str]:
    """The SQL that fills the rollups from the rows: of one registry key (bound as `:key`)
    or of all of them."""
    entries = "sc.registry_key = :key" if one_key else "1"
    cursor = "c.registry_key = :key" if one_key else "1"
    return [sql.format(entries_where=entries, cursor_where=cursor) for sql in REBUILD_SQL]


def rebuild(s: Session, registry_key: str) -> None:
    """Every rollup of `registry_key` recomputed from its ledger entries and usage days (in
    the caller's transaction)."""
    for table in ROLLUP_TABLES:
        where = SCOPES_OF_KEY if table == "ledger_rollup_days" else "registry_key = :key"
        s.execute(text(f"DELETE FROM {table} WHERE {where}"), {"key": registry_key})
    for sql in rebuild_statements(one_key=True):
        s.execute(text(sql), {"key": registry_key})


# -- the ledger ---------------------------------------------------------------------------------

LedgerRow = tuple[date, str, str, str, int]  # (UTC day, contribution, model, method, micro)


def add_ledger(s: Session, registry_key: str, owner: str, entries: Iterable[LedgerRow]) -> None:
    """Add newly stored ledger entries to the rollups (each entry once: the caller passes only
    the entries its insert added); `add_ledger_page` with the days given as dates."""
    add_ledger_page(
        s, registry_key, owner,
        ((cid, day.isoformat(), mid, method, micro) for day, cid, mid, method, micro in entries),
    )  # fmt: skip


def _adding(*columns: str) -> str:
    """The DO UPDATE of an upsert that adds the new row's `columns` to the stored ones."""
    return "DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in columns)


_ADDED_LEDGER = _adding("amount_micro", "entries")
_ADD_LEDGER_DAYS_JSON = insert_json(
    "ledger_rollup_days",
    ("scope", "contribution_id", "day", "model_id", "method", "amount_micro", "entries"),
    1,
    f"ON CONFLICT (scope, contribution_id, day, model_id, method) {_ADDED_LEDGER}",
)
_ADD_LEDGER_TOTALS_JSON = insert_json(
    "ledger_rollup_totals",
    ("registry_key", "owner", "contribution_id", "model_id", "method", "amount_micro", "entries"),
    2,
    f"ON CONFLICT (registry_key, owner, contribution_id, model_id, method) {_ADDED_LEDGER}",
)


def add_ledger_page(
    s: Session,
    registry_key: str,
    owner: str,
    entries: Iterable[tuple[str, str, str, str, int]],
    *,
    scope: int | None = None,
) -> None:
    """Add ledger entries the caller's insert added, all of them, to the rollups: summed
    here and added in two statements (JSON rows). `entries`: (contribution, stored time
    text, model, method, amount); the day is the stored time's date, as in SQL
    (`add_new_ledger`). `scope`: the ledger scope of `registry_key` and `owner`, when the
    caller has it."""
    days: dict[tuple[str, str, str, str], list[int]] = {}
    for cid, at, mid, method, micro in entries:
        acc = days.get((cid, at[:10], mid, method))
        if acc is None:
            days[(cid, at[:10], mid, method)] = [micro, 1]
        else:
            acc[0] += micro
            acc[1] += 1
    if not days:
        return
    totals: dict[tuple[str, str, str], list[int]] = {}
    for (cid, _day, mid, method), (micro, n) in days.items():
        acc = totals.setdefault((cid, mid, method), [0, 0])
        acc[0] += micro
        acc[1] += n
    if scope is None:
        scope = ensure_scope(s, registry_key, owner)
    run = s.connection().exec_driver_sql
    run(_ADD_LEDGER_DAYS_JSON, (scope, encode([(*k, *v) for k, v in days.items()])))
    run(
        _ADD_LEDGER_TOTALS_JSON,
        (registry_key, owner, encode([(*k, *v) for k, v in totals.items()])),
    )


# The ledger entries one insert added (ids after `:after_id`: new rows get higher ids, and the
# caller's transaction is the only writer) summed into the rollups, grouped in SQL.
_ADD_NEW_LEDGER_SQL = (
    """INSERT INTO ledger_rollup_days (scope, contribution_id, day, model_id, method,
         amount_micro, entries)
       SELECT scope, contribution_id, substr(at, 1, 10), model_id, method, sum(amount_micro),
              count(*)
       FROM reward_entries WHERE id > :after_id
       GROUP BY scope, contribution_id, substr(at, 1, 10), model_id, method
       ON CONFLICT (scope, contribution_id, day, model_id, method) DO UPDATE
       SET amount_micro = amount_micro + excluded.amount_micro,
           entries = entries + excluded.entries""",
    """INSERT INTO ledger_rollup_totals (registry_key, owner, contribution_id, model_id,
         method, amount_micro, entries)
       SELECT sc.registry_key, sc.owner, r.contribution_id, r.model_id, r.method,
              sum(r.amount_micro), count(*)
       FROM reward_entries AS r JOIN ledger_scopes AS sc ON sc.id = r.scope
       WHERE r.id > :after_id
       GROUP BY r.scope, r.contribution_id, r.model_id, r.method
       ON CONFLICT (registry_key, owner, contribution_id, model_id, method) DO UPDATE
       SET amount_micro = amount_micro + excluded.amount_micro,
           entries = entries + excluded.entries""",
)


def last_ledger_id(s: Session) -> int:
    """The highest local ledger entry id (0: none): `add_new_ledger` sums the rows after it."""
    return int(s.execute(text("SELECT coalesce(max(id), 0) FROM reward_entries")).scalar() or 0)


def add_new_ledger(s: Session, after_id: int) -> None:
    """Add the ledger entries stored after id `after_id` in the caller's transaction (from
    `last_ledger_id` before the insert) to the rollups, each once."""
    for sql in _ADD_NEW_LEDGER_SQL:
        s.execute(text(sql), {"after_id": after_id})


# -- usage days --------------------------------------------------------------------------------

DayKey = tuple[date, str, str]  # (day, model, method)
Amounts = tuple[int, int, int]  # (events, share ppm, reward micro)


def usage_owners_of(
    s: Session, registry_key: str, contribution_ids: Sequence[str]
) -> dict[str, set[str]]:
    """The identities whose usage rollups hold each of these contributions (those that sync
    it), in one read."""
    streams = {USAGE_STREAM_PREFIX + cid: cid for cid in contribution_ids}
    out: dict[str, set[str]] = {cid: set() for cid in contribution_ids}
    for stream, owner in s.execute(
        select(SyncCursor.stream, SyncCursor.owner).where(
            SyncCursor.registry_key == registry_key, SyncCursor.stream.in_(list(streams))
        )
    ):
        out[streams[stream]].add(owner)
    return out


_USAGE_DAYS_IN = (
    "SELECT day, model_id, method, events, share_ppm, reward_micro FROM usage_days "
    "WHERE registry_key = ? AND contribution_id = ? AND day >= ? AND day <= ?"
)


def usage_window(
    s: Session, registry_key: str, contribution_id: str, since: date, until: date
) -> dict[DayKey, Amounts]:
    """The stored usage days of one contribution in [since, until] (one plain read: days are
    ISO text, as SQLAlchemy's SQLite Date stores them)."""
    rows = s.connection().exec_driver_sql(
        _USAGE_DAYS_IN, (registry_key, contribution_id, since.isoformat(), until.isoformat())
    )
    return {
        (date.fromisoformat(d), mid, method): (int(e), int(sh), int(r))
        for d, mid, method, e, sh, r in rows
    }


def usage_windows(
    s: Session, registry_key: str, contribution_ids: Sequence[str], since: date
) -> dict[str, dict[DayKey, Amounts]]:
    """`usage_window` of each of these contributions from `since` on, in one read."""
    marks = ", ".join("?" * len(contribution_ids))
    rows = s.connection().exec_driver_sql(
        "SELECT contribution_id, day, model_id, method, events, share_ppm, reward_micro "
        f"FROM usage_days WHERE registry_key = ? AND contribution_id IN ({marks}) AND day >= ?",
        (registry_key, *contribution_ids, since.isoformat()),
    )
    out: dict[str, dict[DayKey, Amounts]] = {cid: {} for cid in contribution_ids}
    for cid, d, mid, method, e, sh, r in rows:
        out[cid][(date.fromisoformat(d), mid, method)] = (int(e), int(sh), int(r))
    return out


def replace_usage_window(
    s: Session,
    registry_key: str,
    owner: str,
    contribution_id: str,
    since: date,
    until: date,
    old: Mapping[DayKey, Amounts],
    new: Mapping[DayKey, Amounts],
    outside: Mapping[DayKey, Amounts] | None = None,
) -> None:
    """Replace the usage days of one contribution in [since, until] (`old`: what is stored
    there, from `usage_window`) by `new`, and the rollups with them: the difference goes to
    every identity syncing the contribution; `owner`, syncing it for the first time (its
    cursor is set by the caller in this transaction), gets all of its days (`outside`: its
    stored days outside [since, until] when the caller has read them; otherwise they are
    read here). `plan_usage_window` and `write_usage` in one step."""
    writes = UsageWrites(registry_key)
    plan_usage_window(s, writes, owner, contribution_id, since, until, old, new, outside)
    write_usage(s, writes)


@dataclass
class UsageWrites:
    """The writes of usage windows, planned where they are checked (`plan_usage_window`, which
    only reads) and done in one transaction by `write_usage`: a few statements whatever the
    number of windows (JSON rows, app.store.json_rows), so that a writer thread does them
    while the sync checks the next windows."""

    registry_key: str
    cleared: list[tuple[str, str, str]] = field(default_factory=list)  # (cid, since, until)
    days: list[tuple[str, str, str, str, int, int, int]] = field(default_factory=list)
    # (owner, day, model, method) and (owner, contribution, day): [rows, events, share, reward]
    rollup_days: dict[tuple[str, str, str, str], list[int]] = field(default_factory=dict)
    rollup_contributions: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    cursors: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (owner, stream)

    def set_cursor(self, owner: str, stream: str, value: str | None) -> None:
        """A sync cursor of this registry key set with the windows (its time: when written)."""
        self.cursors[(owner, stream)] = value


def plan_usage_window(
    s: Session,
    writes: UsageWrites,
    owner: str,
    contribution_id: str,
    since: date,
    until: date,
    old: Mapping[DayKey, Amounts],
    new: Mapping[DayKey, Amounts],
    outside: Mapping[DayKey, Amounts] | None = None,
    owners: set[str] | None = None,
) -> None:
    """Add to `writes` what `replace_usage_window` does (same arguments, and the
    contribution's `usage_owners_of` when the caller has read them; `s` only reads: the windows
    of one batch are of different contributions, so none reads what another writes)."""
    key = writes.registry_key
    if owners is None:
        owners = usage_owners_of(s, key, [contribution_id])[contribution_id]
    if old:
        writes.cleared.append((contribution_id, since.isoformat(), until.isoformat()))
    writes.days.extend(
        (contribution_id, d.isoformat(), mid, method, v[0], v[1], v[2])
        for (d, mid, method), v in new.items()
    )
    delta: dict[DayKey, list[int]] = {}
    for k, (e, sh, r) in old.items():
        delta[k] = [-1, -e, -sh, -r]
    for k, (e, sh, r) in new.items():
        acc = delta.setdefault(k, [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += e
        acc[2] += sh
        acc[3] += r
    changed = {k: v for k, v in delta.items() if any(v)}
    for o in sorted(owners):
        _plan_usage(writes, o, contribution_id, changed)
    if owner not in owners:
        if outside is None:  # every stored day of the contribution outside the window
            stored = usage_window(s, key, contribution_id, date.min, date.max)
            outside = {k: v for k, v in stored.items() if not since <= k[0] <= until}
        days = {**outside, **new}
        everything = {k: [1, e, sh, r] for k, (e, sh, r) in days.items()}
        _plan_usage(writes, owner, contribution_id, everything)


def _plan_usage(
    writes: UsageWrites, owner: str, contribution_id: str, delta: Mapping[DayKey, list[int]]
) -> None:
    """Add (rows, events, share, reward) differences to one owner's usage rollups."""
    per_day, per_contribution = writes.rollup_days, writes.rollup_contributions
    for (d, mid, method), v in delta.items():
        day = d.isoformat()
        for acc in (
            per_day.setdefault((owner, day, mid, method), [0, 0, 0, 0]),
            per_contribution.setdefault((owner, contribution_id, day), [0, 0, 0, 0]),
        ):
            acc[0] += v[0]
            acc[1] += v[1]
            acc[2] += v[2]
            acc[3] += v[3]


_CLEAR_USAGE_DAYS = (
    "DELETE FROM usage_days WHERE registry_key = ? AND contribution_id = ? AND day >= ? "
    "AND day <= ?"
)
_INSERT_USAGE_DAYS_JSON = insert_json(
    "usage_days",
    ("registry_key", "contribution_id", "day", "model_id", "method", "events", "share_ppm",
     "reward_micro"),
    1,
)  # fmt: skip
_SUMS = ("rows", "events", "share_ppm", "reward_micro")
_ADDED = _adding(*_SUMS)
_ADD_USAGE_DAYS_JSON = insert_json(
    "usage_rollup_days",
    ("registry_key", "owner", "day", "model_id", "method", *_SUMS),
    1,
    f"ON CONFLICT (registry_key, owner, day, model_id, method) {_ADDED}",
)
_ADD_USAGE_CONTRIBUTIONS_JSON = insert_json(
    "usage_rollup_contributions",
    ("registry_key", "owner", "contribution_id", "day", *_SUMS),
    1,
    f"ON CONFLICT (registry_key, owner, contribution_id, day) {_ADDED}",
)
# Rollup rows whose last usage day went (rows <= 0), of the (owner, day) pairs named.
_DROP_EMPTY_DAYS = (
    "DELETE FROM usage_rollup_days WHERE registry_key = ?1 AND rows <= 0 AND (owner, day) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2))"
)
_DROP_EMPTY_CONTRIBUTION_DAYS = (
    "DELETE FROM usage_rollup_contributions WHERE registry_key = ?1 AND rows <= 0 AND "
    "(owner, contribution_id, day) IN (SELECT json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?2))"
)
_SET_CURSORS_JSON = insert_json(
    "sync_cursors",
    ("registry_key", "synced_at", "owner", "stream", "cursor"),
    2,
    "ON CONFLICT (registry_key, owner, stream) DO UPDATE SET cursor = excluded.cursor, "
    "synced_at = excluded.synced_at",
)


def write_usage(s: Session, writes: UsageWrites) -> None:
    """The planned writes in the caller's transaction (see `UsageWrites`)."""
    key = writes.registry_key
    conn = s.connection()
    run = conn.exec_driver_sql
    if writes.cleared:
        run(_CLEAR_USAGE_DAYS, [(key, *c) for c in writes.cleared])
    if writes.days:
        run(_INSERT_USAGE_DAYS_JSON, (key, encode(writes.days)))
    days: list[tuple[Any, ...]] = [(*k, *v) for k, v in writes.rollup_days.items() if any(v)]
    contributions: list[tuple[Any, ...]] = [
        (*k, *v) for k, v in writes.rollup_contributions.items() if any(v)
    ]
    if days:
        run(_ADD_USAGE_DAYS_JSON, (key, encode(days)))
    if contributions:
        run(_ADD_USAGE_CONTRIBUTIONS_JSON, (key, encode(contributions)))
    emptied = [r for r in days if r[4] < 0]
    if emptied:
        run(_DROP_EMPTY_DAYS, (key, encode(sorted({(r[0], r[1]) for r in emptied}))))
        run(
            _DROP_EMPTY_CONTRIBUTION_DAYS,
            (key, encode([r[:3] for r in contributions if r[3] < 0])),
        )
    if writes.cursors:
        at = _stored_time(conn, datetime.now(UTC))
        cursors = [(owner, stream, value) for (owner, stream), value in writes.cursors.items()]
        run(_SET_CURSORS_JSON, (key, at, encode(cursors)))


def _stored_time(conn: Any, value: datetime) -> Any:
    """A time as SQLAlchemy stores a `SyncCursor.synced_at` on this connection."""
    column = SyncCursor.__table__.c.synced_at
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return process(value) if process is not None else value


def ledger_contributions(s: Session, registry_key: str, owner: str) -> set[str]:
    """The contributions named in `owner`'s ledger copy at `registry_key`."""
    return set(
        s.scalars(
            select(LedgerRollupTotal.contribution_id)
            .where(LedgerRollupTotal.registry_key == registry_key, LedgerRollupTotal.owner == owner)
            .distinct()
        )
    )


ROLLUP_MODELS = (LedgerRollupDay, LedgerRollupTotal, UsageRollupDay, UsageRollupContribution)
