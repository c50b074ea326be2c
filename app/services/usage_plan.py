"""Which usage windows a sync has to read again, from what changed at the registry since the
last sync of this copy.

The registry writes its day buckets only when it settles events, in the same transaction that
writes their ledger entries and moves its settled position (`settledThrough.sequence`), and it
reads that position before the data it answers with. So after a sync that stored every window,
the copy remembers (a mark, one `SyncCursor` row per registry key and identity):
- the settled position read on the ledger's last page before the windows were read;
- the local id of the last ledger entry stored before them (local ids follow ledger order).

The next sync then reads:
- the contributions named by the entries stored after the mark, from the earliest day of
  those entries (the buckets of a settlement are the days of its entries);
- the usual window of contributions whose window was stored more than `STALE_AFTER` ago: an
  event that paid a contribution nothing counts in its bucket but writes no entry, and a
  bucket changed behind the registry's back moves no position; both are read (and the
  figures cross-checked) within a day;
- so nothing at all when the position has not moved, no entry arrived and every window is
  less than a day old;
- every window (as before the mark existed) for a contribution never read, when there is no
  mark, when the registry does not say its position or says one before the mark (another
  database behind the same key), or when rows of another address were adopted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.store.rewards_models import SCOPE_SQL, SyncCursor
from app.store.rollups import USAGE_STREAM_PREFIX

# The mark's stream (not "usage:<id>": those name contributions).
STREAM_USAGE_MARK = "usage-settled"
STALE_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class UsageMark:
    settled_seq: int
    last_entry: int  # local id of the last ledger entry stored before the windows were read

    def text(self) -> str:
        return f"{self.settled_seq}:{self.last_entry}"


def parse_mark(text: str | None) -> UsageMark | None:
    seq, _, last = (text or "").partition(":")
    if not (seq.isascii() and seq.isdigit() and last.isascii() and last.isdigit()):
        return None
    return UsageMark(int(seq), int(last))


LAST_ENTRY_SQL = (
    f"SELECT id FROM reward_entries NOT INDEXED WHERE scope = {SCOPE_SQL} ORDER BY id DESC LIMIT 1"
)
EARLIEST_NEW_SQL = (
    "SELECT contribution_id, min(at) FROM reward_entries NOT INDEXED "
    f"WHERE id > :after AND scope = {SCOPE_SQL} GROUP BY contribution_id"
)


def last_entry(s: Session, registry: str, owner: str) -> int:
    """The local id of the last ledger entry stored for `owner` at `registry` (0: none)."""
    # Backwards along the ids (NOT INDEXED): the rows at the end are the last sync's, so this
    # stops at once, where the (registry, owner, cursor) index would visit every entry.
    found = s.execute(text(LAST_ENTRY_SQL), {"key": registry, "owner": owner}).scalar()
    return int(found or 0)


@dataclass(frozen=True)
class UsagePlan:
    """`full`: contributions whose usual window is read (90 days, or back to the last day
    read); `since`: contributions read from a day (the earliest day of their new entries)."""

    full: frozenset[str]
    since: dict[str, date]

    def __contains__(self, contribution_id: object) -> bool:
        return contribution_id in self.full or contribution_id in self.since


def plan_usage(
    s: Session,
    registry: str,
    owner: str,
    contributions: list[str],
    *,
    mark: UsageMark | None,
    settled_seq: int | None,
    streams: dict[str, datetime],
    adopted: bool,
    now: datetime | None = None,
) -> UsagePlan:
    """What to read for `contributions`; `streams`: when each contribution's window was last
    stored (contributions absent from it were never read)."""
    never = {c for c in contributions if c not in streams}
    if mark is None or settled_seq is None or settled_seq < mark.settled_seq or adopted:
        return UsagePlan(frozenset(contributions), {})
    earliest: dict[str, date] = {}
    # The entries after the mark by their ids (NOT INDEXED: a range of the table, where the
    # contribution index would visit every entry of the registry).
    for cid, at in s.execute(
        text(EARLIEST_NEW_SQL), {"after": mark.last_entry, "key": registry, "owner": owner}
    ):
        earliest[str(cid)] = date.fromisoformat(str(at)[:10])  # as stored: "YYYY-MM-DD …"
    moment = now or datetime.now(UTC)
    stale = {c for c, at in streams.items() if _aware(at) <= moment - STALE_AFTER}
    full = never | (stale & set(contributions))
    since = {c: d for c, d in earliest.items() if c in contributions and c not in full}
    return UsagePlan(frozenset(full), since)


def load_plan(
    s: Session,
    registry: str,
    owner: str,
    contributions: list[str],
    *,
    settled_seq: int | None,
    adopted: bool,
) -> tuple[UsagePlan, UsageMark | None]:
    """The plan for this sync, and the mark to store once its windows are stored (None: the
    registry does not say its settled position)."""
    rows = s.execute(
        select(SyncCursor.stream, SyncCursor.cursor, SyncCursor.synced_at).where(
            SyncCursor.registry_key == registry,
            SyncCursor.owner == owner,
            SyncCursor.stream.startswith(USAGE_STREAM_PREFIX)
            | (SyncCursor.stream == STREAM_USAGE_MARK),
        )
    ).all()
    mark = next((parse_mark(c) for st, c, _at in rows if st == STREAM_USAGE_MARK), None)
    streams = {
        st.removeprefix(USAGE_STREAM_PREFIX): at
        for st, c, at in rows
        if st.startswith(USAGE_STREAM_PREFIX) and c
    }
    plan = plan_usage(
        s, registry, owner, contributions,
        mark=mark, settled_seq=settled_seq, streams=streams, adopted=adopted,
    )  # fmt: skip
    after = None if settled_seq is None else UsageMark(settled_seq, last_entry(s, registry, owner))
    return plan, after


def store_mark(s: Session, registry: str, owner: str, mark: UsageMark) -> None:
    row = s.get(SyncCursor, (registry, owner, STREAM_USAGE_MARK))
    if row is None:
        row = SyncCursor(registry_key=registry, owner=owner, stream=STREAM_USAGE_MARK)
        s.add(row)
    row.cursor = mark.text()
    row.synced_at = datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
