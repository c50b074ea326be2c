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

from collections.abc import Iterable, Mapping
from datetime import date

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session

from app.store.models import Base
from app.store.rewards_models import (
    ContributionCol,
    DayCol,
    MethodCol,
    ModelCol,
    OwnerCol,
    RegistryKeyCol,
    SumCol,
    SyncCursor,
    UsageDay,
)

USAGE_STREAM_PREFIX = "usage:"  # sync cursor stream of one contribution's usage


class LedgerRollupDay(Base):
    """Ledger entries of one UTC day, contribution, model and method."""

    __tablename__ = "ledger_rollup_days"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree: the key (migration 0013)

    registry_key: Mapped[RegistryKeyCol]
    owner: Mapped[OwnerCol]
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
    """INSERT INTO ledger_rollup_days (registry_key, owner, contribution_id, day, model_id,
         method, amount_micro, entries)
       SELECT registry_key, owner, contribution_id, substr(at, 1, 10), model_id, method,
              sum(amount_micro), count(*)
       FROM reward_entries WHERE {ledger_where}
       GROUP BY registry_key, owner, contribution_id, substr(at, 1, 10), model_id, method""",
    """INSERT INTO ledger_rollup_totals (registry_key, owner, contribution_id, model_id,
         method, amount_micro, entries)
       SELECT registry_key, owner, contribution_id, model_id, method, sum(amount_micro),
              sum(entries)
       FROM ledger_rollup_days WHERE {ledger_where}
       GROUP BY registry_key, owner, contribution_id, model_id, method""",
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
    ledger = "registry_key = :key" if one_key else "1"
    cursor = "c.registry_key = :key" if one_key else "1"
    return [sql.format(ledger_where=ledger, cursor_where=cursor) for sql in REBUILD_SQL]


def rebuild(s: Session, registry_key: str) -> None:
    """Every rollup of `registry_key` recomputed from its ledger entries and usage days (in
    the caller's transaction)."""
    for table in ROLLUP_TABLES:
        s.execute(text(f"DELETE FROM {table} WHERE registry_key = :key"), {"key": registry_key})
    for sql in rebuild_statements(one_key=True):
        s.execute(text(sql), {"key": registry_key})


# -- the ledger ---------------------------------------------------------------------------------

LedgerRow = tuple[date, str, str, str, int]  # (UTC day, contribution, model, method, micro)


def add_ledger(s: Session, registry_key: str, owner: str, entries: Iterable[LedgerRow]) -> None:
    """Add newly stored ledger entries to the rollups (each entry once: the caller passes only
    the entries its insert added)."""
    days: dict[tuple[date, str, str, str], list[int]] = {}
    for day, cid, mid, method, micro in entries:
        acc = days.setdefault((day, cid, mid, method), [0, 0])
        acc[0] += micro
        acc[1] += 1
    if not days:
        return
    totals: dict[tuple[str, str, str], list[int]] = {}
    for (_day, cid, mid, method), (micro, n) in days.items():
        acc = totals.setdefault((cid, mid, method), [0, 0])
        acc[0] += micro
        acc[1] += n
    day_stmt = sqlite_insert(LedgerRollupDay)
    s.execute(
        day_stmt.on_conflict_do_update(
            index_elements=[
                "registry_key",
                "owner",
                "contribution_id",
                "day",
                "model_id",
                "method",
            ],
            set_={
                "amount_micro": LedgerRollupDay.amount_micro + day_stmt.excluded.amount_micro,
                "entries": LedgerRollupDay.entries + day_stmt.excluded.entries,
            },
        ),
        [
            {
                "registry_key": registry_key,
                "owner": owner,
                "contribution_id": cid,
                "day": d,
                "model_id": mid,
                "method": method,
                "amount_micro": v[0],
                "entries": v[1],
            }
            for (d, cid, mid, method), v in days.items()
        ],
    )
    total_stmt = sqlite_insert(LedgerRollupTotal)
    s.execute(
        total_stmt.on_conflict_do_update(
            index_elements=["registry_key", "owner", "contribution_id", "model_id", "method"],
            set_={
                "amount_micro": LedgerRollupTotal.amount_micro + total_stmt.excluded.amount_micro,
                "entries": LedgerRollupTotal.entries + total_stmt.excluded.entries,
            },
        ),
        [
            {
                "registry_key": registry_key,
                "owner": owner,
                "contribution_id": cid,
                "model_id": mid,
                "method": method,
                "amount_micro": v[0],
                "entries": v[1],
            }
            for (cid, mid, method), v in totals.items()
        ],
    )


# The ledger entries one insert added (ids after `:after_id`: new rows get higher ids, and the
# caller's transaction is the only writer) summed into the rollups, grouped in SQL.
_ADD_NEW_LEDGER_SQL = (
    """INSERT INTO ledger_rollup_days (registry_key, owner, contribution_id, day, model_id,
         method, amount_micro, entries)
       SELECT registry_key, owner, contribution_id, substr(at, 1, 10), model_id, method,
              sum(amount_micro), count(*)
       FROM reward_entries WHERE id > :after_id
       GROUP BY registry_key, owner, contribution_id, substr(at, 1, 10), model_id, method
       ON CONFLICT (registry_key, owner, contribution_id, day, model_id, method) DO UPDATE
       SET amount_micro = amount_micro + excluded.amount_micro,
           entries = entries + excluded.entries""",
    """INSERT INTO ledger_rollup_totals (registry_key, owner, contribution_id, model_id,
         method, amount_micro, entries)
       SELECT registry_key, owner, contribution_id, model_id, method, sum(amount_micro),
              count(*)
       FROM reward_entries WHERE id > :after_id
       GROUP BY registry_key, owner, contribution_id, model_id, method
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

# Plain executemany statements (a window's days, and their rollups added per owner).
_INSERT_USAGE_DAYS = (
    "INSERT INTO usage_days (registry_key, contribution_id, day, model_id, method, events, "
    "share_ppm, reward_micro) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_ADD_USAGE_DAYS = (
    "INSERT INTO usage_rollup_days (registry_key, owner, day, model_id, method, rows, events, "
    "share_ppm, reward_micro) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (registry_key, owner, day, model_id, method) DO UPDATE SET "
    "rows = rows + excluded.rows, events = events + excluded.events, "
    "share_ppm = share_ppm + excluded.share_ppm, "
    "reward_micro = reward_micro + excluded.reward_micro"
)
_ADD_USAGE_CONTRIBUTION_DAYS = (
    "INSERT INTO usage_rollup_contributions (registry_key, owner, contribution_id, day, rows, "
    "events, share_ppm, reward_micro) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (registry_key, owner, contribution_id, day) DO UPDATE SET "
    "rows = rows + excluded.rows, events = events + excluded.events, "
    "share_ppm = share_ppm + excluded.share_ppm, "
    "reward_micro = reward_micro + excluded.reward_micro"
)

DayKey = tuple[date, str, str]  # (day, model, method)
Amounts = tuple[int, int, int]  # (events, share ppm, reward micro)


def usage_owners(s: Session, registry_key: str, contribution_id: str) -> set[str]:
    """The identities whose usage rollups hold `contribution_id` (those that sync it)."""
    return set(
        s.scalars(
            select(SyncCursor.owner).where(
                SyncCursor.registry_key == registry_key,
                SyncCursor.stream == USAGE_STREAM_PREFIX + contribution_id,
            )
        )
    )


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
    read here)."""
    owners = usage_owners(s, registry_key, contribution_id)
    s.execute(
        delete(UsageDay).where(
            UsageDay.registry_key == registry_key,
            UsageDay.contribution_id == contribution_id,
            UsageDay.day >= since,
            UsageDay.day <= until,
        )
    )
    if new:  # one plain executemany (dates as SQLAlchemy's SQLite Date stores them)
        s.connection().exec_driver_sql(
            _INSERT_USAGE_DAYS,
            [
                (registry_key, contribution_id, d.isoformat(), mid, method, v[0], v[1], v[2])
                for (d, mid, method), v in new.items()
            ],
        )
    delta: dict[DayKey, list[int]] = {}
    for key, (e, sh, r) in old.items():
        delta[key] = [-1, -e, -sh, -r]
    for key, (e, sh, r) in new.items():
        acc = delta.setdefault(key, [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += e
        acc[2] += sh
        acc[3] += r
    changed = {k: v for k, v in delta.items() if any(v)}
    for o in sorted(owners):
        _add_usage(s, registry_key, o, contribution_id, changed)
    if owner not in owners:
        if outside is None:  # after the insert: every stored day of the contribution
            days = usage_window(s, registry_key, contribution_id, date.min, date.max)
        else:
            days = {**outside, **new}
        everything = {k: [1, e, sh, r] for k, (e, sh, r) in days.items()}
        _add_usage(s, registry_key, owner, contribution_id, everything)


def _add_usage(
    s: Session,
    registry_key: str,
    owner: str,
    contribution_id: str,
    delta: Mapping[DayKey, list[int]],
) -> None:
    """Add (rows, events, share, reward) differences to one owner's usage rollups; rows left
    with no usage day in them go."""
    if not delta:
        return
    per_day: dict[date, list[int]] = {}
    for (d, _mid, _method), v in delta.items():
        acc = per_day.setdefault(d, [0, 0, 0, 0])
        for n in range(4):
            acc[n] += v[n]
    run = s.connection().exec_driver_sql
    run(
        _ADD_USAGE_DAYS,
        [
            (registry_key, owner, d.isoformat(), mid, method, v[0], v[1], v[2], v[3])
            for (d, mid, method), v in delta.items()
        ],
    )
    run(
        _ADD_USAGE_CONTRIBUTION_DAYS,
        [
            (registry_key, owner, contribution_id, d.isoformat(), v[0], v[1], v[2], v[3])
            for d, v in per_day.items()
        ],
    )
    if any(v[0] < 0 for v in delta.values()):
        gone_days = sorted({d for (d, _m, _me), v in delta.items() if v[0] < 0})
        s.execute(
            delete(UsageRollupDay).where(
                UsageRollupDay.registry_key == registry_key,
                UsageRollupDay.owner == owner,
                UsageRollupDay.day.in_(gone_days),
                UsageRollupDay.rows <= 0,
            )
        )
        s.execute(
            delete(UsageRollupContribution).where(
                UsageRollupContribution.registry_key == registry_key,
                UsageRollupContribution.owner == owner,
                UsageRollupContribution.contribution_id == contribution_id,
                UsageRollupContribution.day.in_(gone_days),
                UsageRollupContribution.rows <= 0,
            )
        )


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
