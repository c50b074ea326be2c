"""Usage ingestion into the append-only rewards ledger (shared by POST /v1/usage and seed-demo).

One batch = one transaction: events (each with its attributions), ledger entries and the
pre-aggregated day buckets are written together, so readers never see an event without its
money or its chart point. Each event's fee is split exactly: `contributor_pool` goes to its
attributions by the largest-remainder method (one ledger entry per paid attribution, naming
the event); the rest is the protocol's. Protocol parts are summed per model and batch into
one entry without an event (a quarter fewer ledger rows to write than one per event), so:
- the ledger total equals the fees of the stored events exactly, after every batch;
- an event's contributor entries add up to `contributor_pool(fee)`, and its protocol part is
  `fee - sum(its contributor entries)`, both recomputable from the stored rows alone.

A batch is planned first (`plan_batch`: lookups, validation, splits, aggregation; no writes) and
then written (`write_batch`). On SQLite the plan runs outside any write transaction and the
write waits for the in-process writer gate (`registry/db/writegate.py`), so one batch's Python
work overlaps another's writes instead of polling SQLite's busy lock.

Ledger ids are the contributors' sync cursor and must become visible in id order. SQLite has a
single writer; on PostgreSQL ingestion takes a transaction-scoped advisory lock just before it
inserts the ledger rows (which allocates their ids), so a transaction with lower ids always
commits before one with higher ids. Validation, the split, the events and the bucket upserts
come before the lock, so concurrent batches overlap everywhere except ledger insert + commit;
a transaction holding the lock never waits for a row lock (its own upserts are done), so the
lock cannot take part in a deadlock.

Money is bounded so that no stored amount and no sum of them can leave a signed 64-bit integer
(BIGINT, SQLite INTEGER): per event `MAX_FEE_MICRO`, per batch `MAX_BATCH_FEE_MICRO`, per day
bucket `MAX_BUCKET_REWARD_MICRO` and `MAX_BUCKET_EVENTS`, and for the whole ledger
`MAX_LEDGER_TOTAL_MICRO`. Every reward sum a reader can ask for is part of the ledger total, so
it is bounded too. Events that would cross a limit are rejected with a reason, like any other
invalid event. The ledger total is kept per database connection as a running sum over the
ledger ids it has not seen yet (the ledger is append-only and its ids become visible in order,
so that sum is exact), and checked again under the ledger lock before the ledger rows go in.

The first attempt at a batch takes the fast path (plain bulk inserts). If a concurrent batch
stored one of its event ids first, or a limit was reached meanwhile, the transaction is rolled
back and the batch is redone carefully: events are inserted with ON CONFLICT DO NOTHING (which
waits for a concurrent inserter of the same id and then skips it: a duplicate), and the day
buckets the batch touches are read first so that events that would overfill one are rejected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.rewards import PPM, contributor_pool, split_integers
from app.durable import gc_paused
from registry.bulkdb import BulkDb
from registry.db.models import STATE_ACCEPTED, Contribution
from registry.db.usage_models import (
    KIND_CONTRIBUTOR,
    KIND_PROTOCOL,
    LedgerEntry,
    Model,
    UsageBucket,
    UsageEvent,
)
from registry.db.writegate import hold_write_gate
from registry.usage_rules import (
    FUTURE_SKEW,
    MAX_ATTRIBUTIONS,
    MAX_BATCH_FEE_MICRO,
    MAX_BUCKET_EVENTS,
    MAX_BUCKET_REWARD_MICRO,
    MAX_LEDGER_TOTAL_MICRO,
    EventLike,
    Owner,
    Reason,
    overfilled,
    quick_weights,
    room_reason,
    storable,
    validate,
)

T = TypeVar("T")
# Key of the PostgreSQL advisory lock that orders ledger id allocation with commit order.
LEDGER_LOCK_KEY = 0x4C454447  # "LEDG"

# Core tables for bulk executemany inserts (the ORM unit of work is too slow for ingestion).
EVENTS = cast(Table, UsageEvent.__table__)
LEDGER = cast(Table, LedgerEntry.__table__)
BUCKETS = cast(Table, UsageBucket.__table__)


EVENT_COLUMNS = (
    "event_id", "model_id", "at", "fee_micro", "operator_fingerprint", "demo", "received_at",
    "attributions",
)  # fmt: skip
LEDGER_COLUMNS = (
    "event_id", "kind", "contribution_id", "owner_fingerprint", "model_id", "method",
    "amount_micro", "at", "demo",
)  # fmt: skip
BUCKET_COLUMNS = (
    "contribution_id", "bucket_start", "model_id", "method", "events", "share_ppm_sum",
    "reward_micro",
)  # fmt: skip
BUCKET_KEY = BUCKET_COLUMNS[:4]


@dataclass(frozen=True)
class AttributionIn:
    contribution_id: str
    weight: float | int
    method: str


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


def _existing_event_ids(db: BulkDb, ids: Iterable[str]) -> set[str]:
    return {row[0] for row in db.select_in(EVENTS.name, "event_id", ("event_id",), ids)}


def _models(db: BulkDb, ids: Iterable[str]) -> dict[str, tuple[str, bool]]:
    rows = db.select_in(Model.__tablename__, "id", ("id", "operator_fingerprint", "demo"), ids)
    return {mid: (operator, bool(demo)) for mid, operator, demo in rows}


def _contributions(db: BulkDb, ids: Iterable[str]) -> dict[str, Owner]:
    rows = db.select_in(Contribution.__tablename__, "id", ("id", "owner_fingerprint", "state"), ids)
    return {cid: Owner(owner, state) for cid, owner, state in rows}


def _lock_ledger(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LEDGER_LOCK_KEY})


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
    """Validate and write one batch in the session's transaction (the caller commits).

    Events already stored (or repeated within the batch) are reported as duplicates and change
    nothing; invalid events are rejected with every reason; the rest are written.
    `operator_keys` are further keys of the operator (keys it rotated from): contributions of
    those are its own too. `careful` is the retry path (see the module doc). Raises
    `LimitMoved` (roll back and redo carefully) if a concurrent batch used up a limit this
    batch was planned against.
    """
    with gc_paused():
        return _ingest(
            session,
            operator,
            events,
            share_ppm,
            now or datetime.now(UTC),
            max_attributions,
            frozenset(operator_keys),
            careful,
        )


class LimitMoved(Exception):
    """A concurrent batch filled the ledger or a day bucket after this batch was planned."""


@dataclass
class BatchRows:
    """What one batch writes, in storage form: event rows (sorted by id), contributor and
    protocol ledger rows, and bucket increments (sorted by key)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    ledger: list[tuple[Any, ...]] = field(default_factory=list)
    buckets: list[tuple[Any, ...]] = field(default_factory=list)
    fees_micro: int = 0  # accepted fees of the batch (== the ledger rows' total)
    events_written: bool = False  # the careful path inserted the events already


def _ingest(
    session: Session,
    operator: str,
    events: Sequence[EventLike],
    share_ppm: int,
    now: datetime,
    max_attributions: int,
    operator_keys: frozenset[str],
    careful: bool,
) -> IngestResult:
    db = BulkDb(session)
    result, rows = plan_batch(
        db, operator, events, share_ppm, now, max_attributions,
        operator_keys=operator_keys, careful=careful,
    )  # fmt: skip
    if careful and rows.events:
        hold_write_gate(session)
        planned = [r[0] for r in rows.events]
        inserted = db.insert_new(EVENTS, EVENT_COLUMNS, "event_id", rows.events)
        if len(inserted) < len(planned):
            # Stored meanwhile by a concurrent batch: duplicates. The rest is planned again
            # (their events are in, so the plan must not look them up as existing).
            mine = [e for e in events if e.event_id in inserted]
            _, rows = plan_batch(
                db, operator, mine, share_ppm, now, max_attributions,
                operator_keys=operator_keys, careful=True, assume_new=True,
            )  # fmt: skip
            if {r[0] for r in rows.events} != inserted:
                raise LimitMoved("a limit was reached while the events were inserted")
            taken = set(planned) - inserted
            result.accepted = [eid for eid in result.accepted if eid not in taken]
            result.duplicates.extend(eid for eid in planned if eid in taken)
        rows.events_written = True
    write_batch(session, db, rows)
    return result


_TOTAL_KEY = "registry.ledger_total"


def ledger_total(session: Session) -> int:
    """The sum of all ledger entries visible now, exact: a running sum kept on the database
    connection, advanced over the ledger ids it has not counted yet (one index range read).

    Exact because the ledger is append-only and its ids become visible in increasing order
    (see the module doc), so no entry can appear below an id already counted.
    """
    connection = session.connection()
    last_id, total = connection.info.get(_TOTAL_KEY, (0, 0))
    top, added = connection.execute(
        text("SELECT max(id), coalesce(sum(amount_micro), 0) FROM ledger WHERE id > :last"),
        {"last": last_id},
    ).one()
    if top is not None:
        last_id, total = int(top), total + int(added)
        connection.info[_TOTAL_KEY] = (last_id, total)
    return int(total)


def _stored_buckets(
    db: BulkDb, cids: Iterable[str], days: set[Any]
) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(events, reward) of the stored buckets of these contributions on these days."""
    rows = db.select_in(
        BUCKETS.name,
        "contribution_id",
        ("contribution_id", "bucket_start", "model_id", "method", "events", "reward_micro"),
        cids,
    )
    return {
        (cid, day, model, method): (int(n), int(reward))
        for cid, day, model, method, n, reward in rows
        if day in days
    }


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
    """Look up what the batch names (outside any write transaction on SQLite), validate it and
    compute every row it writes: the per-event checks, exact splits and bucket aggregation.

    `careful` also reads the day buckets the batch touches and rejects events that would
    overfill one; `assume_new` skips the lookup of stored event ids (the careful path, after
    it inserted the events itself)."""
    now = now or datetime.now(UTC)
    contributor_pool(0, share_ppm)  # validates the share once; the loop inlines the formula
    result = IngestResult()
    db.tune_for_bulk_writes()
    session_keys = operator_keys | {operator}
    existing = (
        set()
        if assume_new
        else _existing_event_ids(db, filter(storable, {e.event_id for e in events}))
    )
    models = _models(db, filter(storable, {e.model_id for e in events}))
    cids = {a.contribution_id for e in events for a in e.attributions}
    contributions = _contributions(db, filter(storable, cids))
    # What the hot loop needs, in one lookup each: the operator's own models (-> demo flag) and
    # the accepted contributions of other keys (-> owner).
    own_models = {mid: demo for mid, (op, demo) in models.items() if op == operator}
    owners = {
        cid: c.owner
        for cid, c in contributions.items()
        if c.state == STATE_ACCEPTED and c.owner not in session_keys
    }
    # Fees this batch may still accept: its own limit and what is left of the ledger's.
    room = min(MAX_BATCH_FEE_MICRO, MAX_LEDGER_TOTAL_MICRO - ledger_total(db.session))
    fees = 0

    # SQLite stores datetimes as "YYYY-MM-DD HH:MM:SS.ffffff": its day is the first 10 chars.
    text_dates = db.dialect == "sqlite"
    latest = now + FUTURE_SKEW
    now_v = db.render_datetime(now)
    event_rows: list[tuple[Any, ...]] = []
    ledger_rows: list[tuple[Any, ...]] = []
    buckets: dict[tuple[Any, ...], list[int]] = {}
    protocol: dict[str, int] = {}
    seen_in_batch: set[str] = set()
    add_event, add_ledger = event_rows.append, ledger_rows.append
    add_seen, add_accepted = seen_in_batch.add, result.accepted.append
    # Each contribution id as a JSON string, once per batch (they are registry ids, but quoting
    # them properly costs nothing here); methods are known constants.
    quoted = {cid: json.dumps(cid) for cid in owners}

    stored: dict[tuple[Any, ...], tuple[int, int]] | None = None
    if careful:
        days = set()
        for e in events:
            if e.at.tzinfo is not None:
                try:
                    d = e.at.astimezone(UTC).date()
                except OverflowError:
                    continue
                days.add(db.render_date(d))
        stored = _stored_buckets(db, owners, days)

    for index, event in enumerate(events):
        eid = event.event_id
        if eid in existing or eid in seen_in_batch:
            result.duplicates.append(eid)
            continue
        valid = quick_weights(event, own_models, owners, latest, max_attributions)
        if valid is None:
            reasons, _ = validate(
                event,
                operator=operator,
                operator_keys=session_keys,
                models=models,
                contributions=contributions,
                now=now,
                max_attributions=max_attributions,
            )
            assert reasons, "the quick and the full validation disagree"
            result.rejected.append(Rejection(eid, tuple(reasons), index))
            continue
        weights, at = valid
        model_id, fee = event.model_id, event.fee_micro
        if fees + fee > room:
            result.rejected.append(Rejection(eid, (room_reason(fees, fee),), index))
            continue
        if text_dates:  # naive UTC text: the UTC isoformat without its "+00:00"
            at_v: Any = at.isoformat(" ", "microseconds")[:26]
            day: Any = at_v[:10]
        else:
            at_v, day = at, at.date()
        pool = fee * share_ppm // PPM  # == contributor_pool(fee, share_ppm)
        amounts = split_integers(pool, weights)
        if stored is not None:
            full = overfilled(event, day, amounts, stored, buckets)
            if full is not None:
                result.rejected.append(Rejection(eid, (full,), index))
                continue
        fees += fee
        add_seen(eid)
        add_accepted(eid)
        demo = own_models[model_id]
        # Weights that already add up to 1 (normalised by the operator) are their own shares.
        shares = weights if sum(weights) == PPM else split_integers(PPM, weights)
        items = []
        for attr, ppm, amount, share in zip(
            event.attributions, weights, amounts, shares, strict=True
        ):
            cid, method = attr.contribution_id, attr.method
            items.append(f'[{quoted[cid]},{ppm},"{method}"]')
            if amount:
                add_ledger(
                    (eid, KIND_CONTRIBUTOR, cid, owners[cid], model_id, method, amount, at_v, demo)
                )
            key = (cid, day, model_id, method)
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [1, share, amount]
            else:
                bucket[0] += 1
                bucket[1] += share
                bucket[2] += amount
        add_event((eid, model_id, at_v, fee, operator, demo, now_v, f"[{','.join(items)}]"))
        if fee != pool:
            protocol[model_id] = protocol.get(model_id, 0) + fee - pool

    # The protocol's part: one entry per model and batch, booked at receipt (see module doc).
    for model_id, amount in sorted(protocol.items()):
        add_ledger(
            (None, KIND_PROTOCOL, None, None, model_id, None, amount, now_v, own_models[model_id])
        )

    # Events in id order and buckets in key order: concurrent batches then take their row and
    # unique-index locks in the same order, so they wait for each other, never deadlock (and
    # the B-trees are written front to back).
    event_rows.sort()
    bucket_rows = [(*key, n, sh, rw) for key, (n, sh, rw) in sorted(buckets.items())]
    return result, BatchRows(event_rows, ledger_rows, bucket_rows, fees)


BUCKET_LIMITS = {"events": MAX_BUCKET_EVENTS, "reward_micro": MAX_BUCKET_REWARD_MICRO}


def write_batch(session: Session, db: BulkDb, rows: BatchRows) -> None:
    """Write a planned batch in the session's transaction (the caller commits).

    Raises LimitMoved if a day bucket or the ledger total would now exceed its limit (a
    concurrent batch used it up after this one was planned): roll back and redo carefully."""
    if not rows.events:
        return
    # SQLite: queue behind another batch's writes here, not earlier (see db/writegate).
    hold_write_gate(session)
    if not rows.events_written:
        db.insert(EVENTS, EVENT_COLUMNS, rows.events)
    written = db.upsert_add(BUCKETS, BUCKET_COLUMNS, BUCKET_KEY, rows.buckets, BUCKET_LIMITS)
    if written != len(rows.buckets):
        raise LimitMoved("a day bucket is full")
    # Only now the ledger lock (PostgreSQL): ids are allocated from here to the commit, so
    # everything above runs concurrently with other batches (see module doc).
    _lock_ledger(session)
    if ledger_total(session) + rows.fees_micro > MAX_LEDGER_TOTAL_MICRO:
        raise LimitMoved("the ledger is full")
    db.insert(LEDGER, LEDGER_COLUMNS, rows.ledger)


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


def ledger_totals(session: Session) -> LedgerTotals:
    """Sum the ledger and the fees of stored events (an audit query: scans both tables)."""
    fees, n = session.execute(
        select(func.coalesce(func.sum(UsageEvent.fee_micro), 0), func.count())
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
