"""Usage intake: validate a batch and append its accepted events to the usage log (shared by
POST /v1/usage and seed-demo). Settlement (registry.settlement) turns the log into ledger
entries and day buckets later, in chunks.

One batch = one transaction: its accepted events are inserted into `usage_events`, each with
its position in the append-only usage log (`seq`), and nothing else; the answer (accepted /
duplicates / rejected) is final when it is sent and an accepted event is durable then. Its
rewards appear once the settler has passed its `seq`.

The lookups a batch needs (models and their operators, accepted contributions and their owners,
and the files (sha256 -> size) of those attributed with evidence) come from an in-process cache
(`LookupCache`). Only facts that never change are cached: a model's operator and demo flag,
that a contribution is accepted and whose it is (a contribution leaves "accepted" only through
`forget_contribution`, and the settler reads the contributions again anyway), and an accepted
contribution's files (its manifest is signed). Anything not cached is read from the database.

An attribution's evidence is stored, canonical, as the 4th element of its stored item
(`[contributionId, weightPpm, method, {evidence}]`), so the event digest covers it.

A batch is planned first (`plan_batch`: lookups, validation; no writes) and then written
(`write_batch`). On SQLite the plan runs outside any write transaction and the write waits for
the in-process writer gate (`registry/db/writegate.py`).

Sequence numbers must become visible in increasing order (the settler reads the log in `seq`
order and must never pass an event that is still to commit below it). SQLite has one writer;
on PostgreSQL a batch takes a transaction-scoped advisory lock just before it allocates its
sequence numbers (max + 1 ...) and holds it to the commit.

Money is bounded so that no stored amount and no sum of them can leave a signed 64-bit integer
(BIGINT, SQLite INTEGER): per event `MAX_FEE_MICRO` and per batch `MAX_BATCH_FEE_MICRO` (checked
here), for the whole ledger `MAX_LEDGER_TOTAL_MICRO` (checked here against all fees received,
settled or not: the ledger total is the settled part of them), and per day bucket
`MAX_BUCKET_REWARD_MICRO` / `MAX_BUCKET_EVENTS` (checked by the settler, which alone knows the
buckets: an attribution that would overfill one settles to the protocol instead, see
registry.settlement). The received total is kept per database connection as a running sum
over the sequence numbers it has not seen yet, and checked again under the lock.

The first attempt at a batch takes the fast path (plain bulk insert). If a concurrent batch
stored one of its event ids first, or the ledger limit was reached meanwhile, the transaction is
rolled back and the batch is redone carefully: events are inserted with ON CONFLICT DO NOTHING
and the ones a concurrent batch stored are reported as duplicates.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, Table, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.rewards import contributor_pool
from app.durable import gc_paused
from registry.bulkdb import BulkDb
from registry.db.models import STATE_ACCEPTED, Contribution, ContributionFile
from registry.db.usage_models import (
    KIND_CONTRIBUTOR,
    KIND_PROTOCOL,
    LedgerEntry,
    Model,
    SettlementState,
    UsageEvent,
)
from registry.db.writegate import hold_write_gate
from registry.usage_rules import (
    FUTURE_SKEW,
    MAX_ATTRIBUTIONS,
    MAX_BATCH_FEE_MICRO,
    MAX_LEDGER_TOTAL_MICRO,
    EventLike,
    FileSizes,
    Owner,
    Reason,
    evidence_json,
    hex_files,
    quick_weights,
    room_reason,
    storable,
    validate,
)

T = TypeVar("T")
# Key of the PostgreSQL advisory lock that orders sequence numbers with commit order.
INTAKE_LOCK_KEY = 0x55534147  # "USAG"

# Core table for bulk inserts (the ORM unit of work is too slow for intake).
EVENTS = cast(Table, UsageEvent.__table__)

EVENT_COLUMNS = (
    "event_id", "model_id", "at", "fee_micro", "operator_fingerprint", "demo", "received_at",
    "attributions", "seq",
)  # fmt: skip


@dataclass(frozen=True)
class AttributionIn:
    contribution_id: str
    weight: float | int
    method: str
    evidence: dict[str, Any] | None = None  # as in POST /v1/usage (docs/protocol.md)


@dataclass(frozen=True)
class EventIn:
    event_id: str
    model_id: str
    at: datetime
    fee_micro: int
    attributions: tuple[AttributionIn, ...]


@dataclass(frozen=True)
class Rejection:
    event_id: str
    reasons: tuple[Reason, ...]
    index: int = -1  # position of the event in its batch


@dataclass
class IngestResult:
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    last_seq: int = 0  # the highest sequence number this batch wrote (0: none)


class LookupCache:
    """Immutable facts of one database, kept in memory: model -> (operator, demo) and accepted
    contribution -> owner. Misses are read from the database (and cached if they are facts
    that cannot change), so a model registered or a contribution accepted a moment ago is seen
    by the next batch."""

    MAX_ENTRIES = 2_000_000
    MAX_FILES = 2_000_000  # file entries kept over all contributions

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, tuple[str, bool]] = {}
        self._accepted: dict[str, str] = {}
        self._files: dict[str, dict[str, int]] = {}
        self._file_entries = 0
        self._generation: int | None = None

    def sync(self, db: BulkDb) -> None:
        """Drop everything cached if a transaction of any process invalidated the cache since
        it was filled (`forget_contribution`): one primary-key read per batch."""
        generation = db.session.execute(_GENERATION_SQL).scalar_one()
        with self._lock:
            if generation != self._generation:
                self._models.clear()
                self._accepted.clear()
                self._files.clear()
                self._file_entries = 0
                self._generation = generation

    def models(self, db: BulkDb, ids: set[str]) -> dict[str, tuple[str, bool]]:
        known = self._models
        out = {mid: known[mid] for mid in ids if mid in known}
        missing = [mid for mid in ids if mid not in out and storable(mid)]
        if missing:
            rows = db.select_in(
                Model.__tablename__, "id", ("id", "operator_fingerprint", "demo"), missing
            )
            with self._lock:
                for mid, operator, demo in rows:
                    out[mid] = known[mid] = (operator, bool(demo))
        return out

    def contributions(self, db: BulkDb, ids: set[str]) -> dict[str, Owner]:
        """Owner and state of the contributions that exist (accepted ones from memory)."""
        known = self._accepted
        out = {cid: Owner(known[cid], STATE_ACCEPTED) for cid in ids if cid in known}
        missing = [cid for cid in ids if cid not in out and storable(cid)]
        if missing:
            rows = db.select_in(
                Contribution.__tablename__, "id", ("id", "owner_fingerprint", "state"), missing
            )
            with self._lock:
                if len(known) > self.MAX_ENTRIES:
                    known.clear()
                for cid, owner, state in rows:
                    out[cid] = Owner(owner, state)
                    if state == STATE_ACCEPTED:
                        known[cid] = owner
        return out

    def files(self, db: BulkDb, ids: set[str]) -> dict[str, FileSizes]:
        """sha256 -> size of the files of each of `ids` (accepted contributions only: their
        files never change), loaded once per contribution."""
        known = self._files
        out: dict[str, FileSizes] = {cid: known[cid] for cid in ids if cid in known}
        missing = [cid for cid in ids if cid not in out]
        if missing:
            rows: dict[str, list[tuple[str, int]]] = {cid: [] for cid in missing}
            for cid, sha, size in db.select_in(
                ContributionFile.__tablename__,
                "contribution_id",
                ("contribution_id", "sha256", "size"),
                missing,
            ):
                rows[cid].append((sha, size))
            loaded = {cid: hex_files(files) for cid, files in rows.items()}
            with self._lock:
                if self._file_entries > self.MAX_FILES:
                    known.clear()
                    self._file_entries = 0
                for cid, sizes in loaded.items():
                    known[cid] = sizes
                    self._file_entries += len(sizes) + 1
            out.update(loaded)
        return out

    def forget_contribution(self, cid: str) -> None:
        with self._lock:
            self._accepted.pop(cid, None)
            self._files.pop(cid, None)


# The lookup cache's generation (table cache_generations): bumped by every transaction that
# makes a cached fact wrong, compared by every process before each batch.
_GENERATION_SQL = text("SELECT generation FROM cache_generations WHERE name = 'lookups'")
_BUMP_SQL = text("UPDATE cache_generations SET generation = generation + 1 WHERE name = 'lookups'")

_caches: weakref.WeakKeyDictionary[Engine, LookupCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def lookup_cache(session: Session) -> LookupCache:
    """The cache of the session's engine (one per database this process talks to)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _caches_lock:
        cache = _caches.get(engine)
        if cache is None:
            cache = _caches[engine] = LookupCache()
        return cache


def forget_contribution(session: Session, cid: str) -> None:
    """Call when a contribution leaves the accepted state: intake stops accepting usage of it
    (the settler re-checks every contribution from the database in any case)."""
    session.execute(_BUMP_SQL)  # the other processes drop their caches after the commit
    lookup_cache(session).forget_contribution(cid)


def _existing_event_ids(db: BulkDb, ids: Iterable[str]) -> set[str]:
    return {row[0] for row in db.select_in(EVENTS.name, "event_id", ("event_id",), ids)}


# PostgreSQL: intake notifies this channel in every transaction that appends (delivered at
# its commit), so a settler in another process settles at once instead of at its next poll.
USAGE_CHANNEL = "usage_appended"


def _lock_intake(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # the notification rides on the lock's statement: no extra round trip
        session.execute(
            text(f"SELECT pg_advisory_xact_lock(:k), pg_notify('{USAGE_CHANNEL}', '')"),
            {"k": INTAKE_LOCK_KEY},
        )


def ingest_events(
    session: Session,
    *,
    operator: str,
    events: Sequence[EventLike],
    share_ppm: int,
    now: datetime | None = None,
    max_attributions: int = MAX_ATTRIBUTIONS,
    operator_keys: Iterable[str] = (),
    careful: bool = False,
) -> IngestResult:
    """Validate one batch and append its accepted events to the usage log in the session's
    transaction (the caller commits).

    Events already stored (or repeated within the batch) are reported as duplicates and change
    nothing; invalid events are rejected with every reason; the rest are appended.
    `operator_keys` are further keys of the operator (keys it rotated from): contributions of
    those are its own too. `careful` is the retry path (see the module doc). Raises
    `LimitMoved` (roll back and redo carefully) if a concurrent batch used up the ledger limit
    this batch was planned against.
    """
    with gc_paused():
        db = BulkDb(session)
        result, rows = plan_batch(
            db, operator, events, share_ppm, now or datetime.now(UTC), max_attributions,
            operator_keys=frozenset(operator_keys), careful=careful,
        )  # fmt: skip
        taken = write_batch(session, db, rows)
        if taken:
            result.accepted = [eid for eid in result.accepted if eid not in taken]
            result.duplicates.extend(eid for eid in rows.ids if eid in taken)
        result.last_seq = rows.last_seq
        return result


class LimitMoved(Exception):
    """A concurrent batch filled the ledger after this batch was planned."""


@dataclass
class BatchRows:
    """What one batch writes, in storage form: event rows in batch order, without their
    sequence number (given under the lock)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    fees_micro: int = 0  # accepted fees of the batch
    careful: bool = False  # insert with ON CONFLICT DO NOTHING
    last_seq: int = 0  # set by write_batch

    @property
    def ids(self) -> list[str]:
        return [r[0] for r in self.events]


_RECEIVED_KEY = "registry.received_total"


RECEIVED_SQL = text(
    "SELECT t.top, (SELECT coalesce(sum(fee_micro), 0) FROM usage_events "
    "WHERE seq > :last AND seq <= t.top) FROM (SELECT max(seq) AS top FROM usage_events) t"
)


def _received(session: Session) -> tuple[int, int]:
    """(highest sequence number, sum of all fees received) visible now, exact: a running sum
    kept on the database connection, advanced over the sequence numbers it has not counted
    yet (one index range read). Exact because the log is append-only and its sequence numbers
    become visible in increasing order (see the module doc)."""
    connection = session.connection()
    last_seq, total = connection.info.get(_RECEIVED_KEY, (0, 0))
    # Bounded on both sides by the top (one backward index step), so the range read is an
    # index range whatever the statistics: with `seq > :last` alone, PostgreSQL planned a
    # sequential scan of the whole log until the table's first ANALYZE (its default
    # selectivity for one open range is a third of the rows), ~90 us of server CPU per
    # event at 300,000 events; autovacuum's first ANALYZE comes late or not at all in a
    # short fill (bench/README.md).
    top, added = connection.execute(RECEIVED_SQL, {"last": last_seq}).one()
    if top is not None:
        last_seq, total = int(top), total + int(added)
        connection.info[_RECEIVED_KEY] = (last_seq, total)
    return int(last_seq), int(total)


def received_total(session: Session) -> int:
    """All fees of the events in the usage log (settled or not)."""
    return _received(session)[1]


def plan_batch(
    db: BulkDb,
    operator: str,
    events: Sequence[EventLike],
    share_ppm: int,
    now: datetime | None = None,
    max_attributions: int = MAX_ATTRIBUTIONS,
    *,
    operator_keys: frozenset[str] = frozenset(),
    careful: bool = False,
    assume_new: bool = False,
) -> tuple[IngestResult, BatchRows]:
    """Look up what the batch names (cache first; outside any write transaction on SQLite),
    validate it and build the event rows it appends. `assume_new` skips the lookup of stored
    event ids."""
    now = now or datetime.now(UTC)
    contributor_pool(0, share_ppm)  # validates the share (the settler splits with it)
    result = IngestResult()
    db.tune_for_bulk_writes()
    session_keys = operator_keys | {operator}
    existing = (
        set()
        if assume_new
        else _existing_event_ids(db, filter(storable, {e.event_id for e in events}))
    )
    cache = lookup_cache(db.session)
    cache.sync(db)
    models = cache.models(db, {e.model_id for e in events})
    contributions = cache.contributions(
        db, {a.contribution_id for e in events for a in e.attributions}
    )
    # What the hot loop needs, in one lookup each: the operator's own models (-> demo flag) and
    # the accepted contributions of other keys (-> owner).
    own_models = {mid: demo for mid, (op, demo) in models.items() if op == operator}
    owners = {
        cid: c.owner
        for cid, c in contributions.items()
        if c.state == STATE_ACCEPTED and c.owner not in session_keys
    }
    # Files of the contributions this batch names evidence of (usually none).
    with_evidence = {
        a.contribution_id for e in events for a in e.attributions if a.evidence is not None
    }
    files = cache.files(db, with_evidence & owners.keys()) if with_evidence else {}
    # Fees this batch may still accept: its own limit and what is left of the ledger's.
    room = min(MAX_BATCH_FEE_MICRO, MAX_LEDGER_TOTAL_MICRO - received_total(db.session))
    fees = 0

    latest = now + FUTURE_SKEW
    text_dates = db.dialect == "sqlite"
    now_v = db.render_datetime(now)
    event_rows: list[tuple[Any, ...]] = []
    seen_in_batch: set[str] = set()
    add_event, add_seen, add_accepted = event_rows.append, seen_in_batch.add, result.accepted.append
    # Each contribution id as a JSON string, once per batch.
    quoted = {cid: json.dumps(cid) for cid in owners}

    for index, event in enumerate(events):
        eid = event.event_id
        if eid in existing or eid in seen_in_batch:
            result.duplicates.append(eid)
            continue
        valid = quick_weights(event, own_models, owners, latest, max_attributions, files)
        if valid is None:
            reasons, _ = validate(
                event,
                operator=operator,
                operator_keys=session_keys,
                models=models,
                contributions=contributions,
                now=now,
                max_attributions=max_attributions,
                files=files,
            )
            assert reasons, "the quick and the full validation disagree"
            result.rejected.append(Rejection(eid, tuple(reasons), index))
            continue
        weights, at = valid
        fee = event.fee_micro
        if fees + fee > room:
            result.rejected.append(Rejection(eid, (room_reason(fees, fee),), index))
            continue
        fees += fee
        add_seen(eid)
        add_accepted(eid)
        # SQLite stores datetimes as naive UTC text: the UTC isoformat without its "+00:00".
        at_v: Any = at.isoformat(" ", "microseconds")[:26] if text_dates else at
        items = ",".join(
            f'[{quoted[a.contribution_id]},{ppm},"{a.method}"]'
            if a.evidence is None
            else f'[{quoted[a.contribution_id]},{ppm},"{a.method}",{evidence_json(a.evidence)}]'
            for a, ppm in zip(event.attributions, weights, strict=True)
        )
        model_id = event.model_id
        add_event((eid, model_id, at_v, fee, operator, own_models[model_id], now_v, f"[{items}]"))
    return result, BatchRows(event_rows, fees, careful)


def write_batch(session: Session, db: BulkDb, rows: BatchRows) -> set[str]:
    """Append a planned batch to the usage log in the session's transaction (the caller
    commits); the event ids a concurrent batch stored first (careful path only: they are
    duplicates). Raises LimitMoved if the ledger limit would now be exceeded."""
    if not rows.events:
        return set()
    # SQLite: queue behind another batch's writes here, not earlier (see db/writegate).
    hold_write_gate(session)
    _lock_intake(session)
    last_seq, received = _received(session)
    if received + rows.fees_micro > MAX_LEDGER_TOTAL_MICRO:
        raise LimitMoved("the ledger is full")
    numbered = [(*row, last_seq + i) for i, row in enumerate(rows.events, 1)]
    rows.last_seq = last_seq + len(numbered)
    # In id order: concurrent batches take their unique-index locks in the same order.
    numbered.sort()
    if rows.careful:
        inserted = db.insert_new(EVENTS, EVENT_COLUMNS, "event_id", numbered)
        return {r[0] for r in numbered} - inserted
    db.insert(EVENTS, EVENT_COLUMNS, numbered)
    return set()


def ingest_with_retry(
    session: Session,
    *,
    operator: str,
    events: Sequence[EventLike],
    share_ppm: int,
    max_attributions: int = MAX_ATTRIBUTIONS,
    operator_keys: Iterable[str] = (),
    render: Callable[[IngestResult], T] | None = None,
    attempts: int = 4,
) -> tuple[IngestResult, T | None]:
    """Ingest and commit, and `render` the answer before the commit (so that once the batch is
    stored, nothing can fail any more).

    If a concurrent batch stored one of our event ids first (unique violation) or used up a
    limit, roll back and redo carefully: duplicates are then skipped by the database itself and
    full buckets are read first, so a redo fails again only if yet another batch fills a limit
    in between."""
    careful = False
    for attempt in range(attempts):
        try:
            result = ingest_events(
                session,
                operator=operator,
                events=events,
                share_ppm=share_ppm,
                max_attributions=max_attributions,
                operator_keys=operator_keys,
                careful=careful,
            )
            rendered = render(result) if render is not None else None
            session.commit()
            return result, rendered
        except Exception as exc:
            if not (isinstance(exc, LimitMoved) or _is_retryable(session, exc)):
                raise
            session.rollback()
            careful = True
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# and may simply be run again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


def _is_retryable(session: Session, exc: Exception) -> bool:
    """Unique/foreign-key violations, from SQLAlchemy or from the driver (bulk writes go
    straight to the driver, so its own IntegrityError arrives unwrapped), and a deadlock or
    serialization failure that PostgreSQL resolved by aborting this transaction."""
    if isinstance(exc, IntegrityError):
        return True
    dbapi = session.get_bind().dialect.loaded_dbapi
    if isinstance(exc, dbapi.IntegrityError):
        return True
    driver_error = getattr(exc, "orig", exc)
    return getattr(driver_error, "sqlstate", None) in _RETRY_SQLSTATES


@dataclass(frozen=True)
class LedgerTotals:
    """Audit figures: the invariant is ledger_micro == fees_micro."""

    fees_micro: int
    ledger_micro: int
    contributor_micro: int
    protocol_micro: int
    events: int
    negative_entries: int


def settled_seq(session: Session) -> int:
    """The settled watermark: events with seq up to it are in the ledger, no others."""
    value = session.scalar(select(SettlementState.settled_seq).where(SettlementState.id == 1))
    return int(value or 0)


def ledger_totals(session: Session) -> LedgerTotals:
    """Sum the ledger and the fees of the settled events (an audit query: scans both tables)."""
    watermark = settled_seq(session)
    fees, n = session.execute(
        select(func.coalesce(func.sum(UsageEvent.fee_micro), 0), func.count()).where(
            UsageEvent.seq <= watermark
        )
    ).one()
    by_kind = dict(
        session.execute(
            select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount_micro), 0)).group_by(
                LedgerEntry.kind
            )
        ).all()
    )
    negative = session.execute(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.amount_micro < 0)
    ).scalar_one()
    contributor = int(by_kind.get(KIND_CONTRIBUTOR, 0))
    protocol = int(by_kind.get(KIND_PROTOCOL, 0))
    return LedgerTotals(
        fees_micro=int(fees),
        ledger_micro=contributor + protocol,
        contributor_micro=contributor,
        protocol_micro=protocol,
        events=int(n),
        negative_entries=int(negative),
    )
