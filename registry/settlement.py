"""Settlement: the usage log (registry.ledger, intake) becomes ledger entries and day buckets.

The settler takes the next unsettled events in sequence order, a chunk at a time (thousands),
and in ONE transaction:
- splits each fee exactly: `contributor_pool(fee, share)` over the attributions by the largest
  remainder (app.domain.rewards), the rest is the protocol's (the same split as the old
  synchronous path, event by event);
- writes one contributor ledger entry per (contribution, model, method, day) the chunk touched,
  holding the exact sum of its events' paid amounts; the entry commits to them with
  `digest = sha256(sorted "<event digest> <amount>\\n" lines)`, and names its chunk (the usage-log
  range seq_from < seq <= seq_to) so `entry_events` can list them again;
- writes one protocol entry per model with the rest of the chunk's fees (so the ledger total
  equals the settled fees exactly, after every chunk);
- adds the chunk's effect to the day buckets, one upsert per bucket touched;
- advances the settled watermark (`settlement_state.settled_seq`).
A crash anywhere before the commit leaves nothing behind, and the next run takes the same chunk
again: every event is settled exactly once.

Its first statement locks the watermark row (an UPDATE), so settlers of one database (threads,
processes) run one after the other and ledger ids are allocated in commit order (the sync
cursor). On SQLite the settler also takes the in-process writer gate first.

Re-validation: intake checked the event against the contributions and limits of its time. At
settlement an attribution whose contribution is no longer accepted, or whose day bucket would
pass `MAX_BUCKET_EVENTS` / `MAX_BUCKET_REWARD_MICRO`, is dropped: its amount (computed by the
same split over all the event's weights, so the other attributions get exactly what they would
have) goes to the protocol entry, the drop is recorded in `settlement_drops`, and the fee is
conserved. Everything else (event id, model ownership, fee limits, the ledger limit) cannot
change after intake.

An event digest is sha256 over the event's stored fields joined by NUL (ids cannot hold NUL):
event id, model id, time as "YYYY-MM-DDTHH:MM:SS.ffffffZ", fee in micro-units, and the stored
attributions JSON as intake wrote it: [[contributionId, weightPpm, method], ...], an item with
evidence carrying it as a fourth element (its canonical JSON object), so the digest covers it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import sys
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import Table, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.domain.rewards import PPM, split_integers
from registry import translog
from registry.bulkdb import BulkDb
from registry.db.models import STATE_ACCEPTED, Contribution
from registry.db.usage_models import (
    KIND_CONTRIBUTOR,
    KIND_PROTOCOL,
    LedgerEntry,
    PaidAttribution,
    SettlementDrop,
    SettlementState,
    UsageBucket,
    UsageEvent,
)
from registry.db.writegate import hold_write_gate
from registry.ledger import USAGE_CHANNEL
from registry.usage_rules import MAX_BUCKET_EVENTS, MAX_BUCKET_REWARD_MICRO

try:  # the registry extra installs numpy; the app's bundled demo registry settles without it
    import numpy as np
except ImportError:  # pragma: no cover - exercised by test_settlement_split with np = None
    np = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CHUNK_EVENTS = 5000
LEDGER = cast(Table, LedgerEntry.__table__)
BUCKETS = cast(Table, UsageBucket.__table__)
DROPS = cast(Table, SettlementDrop.__table__)
PAID = cast(Table, PaidAttribution.__table__)
PAID_COLUMNS = ("contribution_id", "method", "chunk", "positions")
LEDGER_COLUMNS = translog.SETTLED_COLUMNS  # the ledger row as written (its id comes after)
BUCKET_COLUMNS = (
    "contribution_id", "bucket_start", "model_id", "method", "events", "share_ppm_sum",
    "reward_micro",
)  # fmt: skip
BUCKET_KEY = BUCKET_COLUMNS[:4]
BUCKET_LIMITS = {"events": MAX_BUCKET_EVENTS, "reward_micro": MAX_BUCKET_REWARD_MICRO}
DROP_NOT_ACCEPTED = "contribution_not_accepted"
DROP_BUCKET_FULL = "bucket_full"


def event_digest(event_id: str, model_id: str, at_z: str, fee: int, attributions: str) -> str:
    data = "\x00".join((event_id, model_id, at_z, str(fee), attributions))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def entry_digest(pairs: Iterable[tuple[str, int]]) -> str:
    """The digest an aggregated entry commits to: its (event digest, amount) pairs, sorted."""
    if not isinstance(pairs, Sequence):
        pairs = list(pairs)
    if len(pairs) == 1:  # most entries of a chunk hold one event
        ((digest, amount),) = pairs
        return hashlib.sha256(f"{digest} {amount}\n".encode()).hexdigest()
    text = "".join([f"{digest} {amount}\n" for digest, amount in sorted(pairs)])
    return hashlib.sha256(text.encode()).hexdigest()


def pack_positions(seqs: Iterable[int]) -> bytes:
    """Usage-log positions as stored in paid_attributions: ascending, each once (intake
    refuses an attribution repeated in an event; this is a guard), little-endian int64."""
    packed = array("q", sorted(set(seqs)))
    if sys.byteorder == "big":  # pragma: no cover - the stored form is little-endian
        packed.byteswap()
    return packed.tobytes()


def unpack_positions(data: bytes) -> list[int]:
    packed = array("q")
    packed.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover
        packed.byteswap()
    return packed.tolist()


def split_event(fee: int, weights: list[int], share_ppm: int) -> tuple[list[int], list[int]]:
    """(amounts, shares) of one event: the contributors' pool split over the weights, and
    each attribution's normalised share in ppm (weights adding up to 1 are their own)."""
    amounts = split_integers(fee * share_ppm // PPM, weights)
    shares = weights if sum(weights) == PPM else split_integers(PPM, weights)
    return amounts, shares


def _utc_z(value: Any) -> str:
    """A stored time as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (SQLite text or a datetime)."""
    if isinstance(value, str):
        return (
            value[:26].replace(" ", "T") + "Z"
            if len(value) >= 26
            else _utc_z(datetime.fromisoformat(value))
        )
    v: datetime = value.astimezone(UTC) if value.utcoffset() else value
    return v.replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """app.durable.gc_paused shared by the settler's threads: the collector stays off until
    the last of them is done (the planning thread of a pipeline often outlives the write of
    the chunk before; with gc_paused alone the writer switched the collector back on under
    it, which cost the planner a third more CPU)."""
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


# The pipeline's planner thread holds the GIL while it computes a chunk; each round trip of the
# writer's settling transaction returns into that, and CPython hands the GIL over only after
# the switch interval (5 ms by default): up to 5 ms lost per statement. While a chunk is planned
# in the background the interval is this short (it only matters while a thread waits for the
# GIL, so it costs next to nothing otherwise); None keeps the interpreter's own.
PLANNING_SWITCH_INTERVAL_S: float | None = 0.0002
_switch_lock = threading.Lock()
_switch_holders = 0
_switch_was = 0.0


@contextlib.contextmanager
def _short_switch_interval() -> Iterator[None]:
    global _switch_holders, _switch_was
    wanted = PLANNING_SWITCH_INTERVAL_S
    if wanted is None:
        yield
        return
    with _switch_lock:
        if _switch_holders == 0:
            _switch_was = sys.getswitchinterval()
            sys.setswitchinterval(min(wanted, _switch_was))
        _switch_holders += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_holders -= 1
            if _switch_holders == 0:
                sys.setswitchinterval(_switch_was)


class BucketFull(Exception):
    """A day bucket reached its limit: redo the chunk reading the buckets first."""


@dataclass(frozen=True)
class ChunkResult:
    events: int
    settled_seq: int
    entries: int


def _stored_buckets(
    db: BulkDb, keys: Iterable[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[int, int]]:
    wanted = set(keys)
    rows = db.select_in(
        BUCKETS.name,
        "contribution_id",
        ("contribution_id", "bucket_start", "model_id", "method", "events", "reward_micro"),
        {k[0] for k in wanted},
    )
    out = {}
    for cid, day, model, method, n, reward in rows:
        key = (cid, day if not isinstance(day, str) else day[:10], model, method)
        if key in wanted:
            out[key] = (int(n), int(reward))
    return out


@dataclass
class _Plan:
    """A chunk computed but not written: what `_write_plan` needs, and what it assumed (the
    watermark it starts from and the owners of the accepted contributions it names)."""

    seq_from: int
    seq_to: int
    events: int
    owners: dict[str, str]
    cids: frozenset[str]
    ledger_rows: list[tuple[Any, ...]]  # the contributor entries (protocol rows at write time)
    protocol: dict[str, list[Any]]
    bucket_rows: list[tuple[Any, ...]]
    drops: list[tuple[Any, ...]]
    paid: list[tuple[str, str, int, bytes]]  # PAID_COLUMNS rows: the positions of what was paid


def _read_events(db: BulkDb, after: int, limit: int) -> list[tuple[Any, ...]]:
    """The next `limit` events after `after`: (seq, event id, model, at, fee, demo,
    attributions JSON, at as "...Z" text or None, day or None). PostgreSQL renders the time
    text and the UTC day itself (cheaper there than datetime methods here)."""
    if db.dialect == "postgresql":
        return db.fetch(
            "SELECT seq, event_id, model_id, at, fee_micro, demo, attributions, "
            "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
            "(at AT TIME ZONE 'UTC')::date FROM usage_events "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
    return db.fetch(
        "SELECT seq, event_id, model_id, at, fee_micro, demo, attributions, NULL, NULL "
        "FROM usage_events WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    )


def _owners(db: BulkDb, cids: Iterable[str]) -> dict[str, str]:
    """Owner of each accepted contribution among `cids`."""
    return {
        cid: owner
        for cid, owner, state in db.select_in(
            Contribution.__tablename__, "id", ("id", "owner_fingerprint", "state"), cids
        )
        if state == STATE_ACCEPTED
    }


_decode_attributions = msgspec.json.Decoder(list).decode
_INT64_SAFE = 2**62


def _split_rows(totals: Any, weights: Any) -> Any:
    """`split_integers` of each row (numpy int64: totals (n,), weights (n, k), every weight sum
    positive, no product past 2**62): floor quotas, then one unit each to the `left` largest
    remainders, the lower index first among equals (a stable sort, as split_integers does)."""
    n, k = weights.shape
    wsum = weights.sum(axis=1)[:, None]
    prod = totals[:, None] * weights
    parts = prod // wsum
    left = totals - parts.sum(axis=1)
    if left.any():
        order = np.argsort(parts * wsum - prod, axis=1, kind="stable")  # -remainder, ascending
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(k), (n, k)), axis=1)
        parts += rank < left[:, None]
    return parts


def _split_chunk(
    pools: list[int], parsed: list[list[Any]]
) -> tuple[list[list[int]], list[list[int]]]:
    """(amounts, shares) of every event: `split_integers(pool, weights)` and
    `split_integers(PPM, weights)` (a weight list adding up to PPM is its own split), computed
    over all the events with the same number of attributions at once; events numpy cannot
    take exactly (no weights, weights adding up to 0, products past int64) go one by one, and
    so do all of them without numpy."""
    n = len(parsed)
    amounts: list[Any] = [None] * n
    shares: list[Any] = [None] * n
    groups: dict[int, list[int]] = {}
    for i, attrs in enumerate(parsed):
        groups.setdefault(len(attrs), []).append(i)
    for k, idx in groups.items():
        m = len(idx)
        if k and np is not None:
            weights = np.array([a[1] for i in idx for a in parsed[i]], dtype=np.int64).reshape(m, k)
            totals = [pools[i] for i in idx]
            if (
                max(totals) * int(weights.max()) < _INT64_SAFE
                and int(weights.min()) >= 0
                and bool((weights.sum(axis=1) > 0).all())
            ):
                both = _split_rows(
                    np.array(totals + [PPM] * m, dtype=np.int64), np.concatenate((weights, weights))
                ).tolist()
                for j, i in enumerate(idx):
                    amounts[i] = both[j]
                    shares[i] = both[m + j]
                continue
        for i in idx:
            ws = [a[1] for a in parsed[i]]
            amounts[i] = split_integers(pools[i], ws)
            shares[i] = ws if sum(ws) == PPM else split_integers(PPM, ws)
    return amounts, shares


def _plan(
    db: BulkDb,
    events: list[tuple[Any, ...]],
    watermark: int,
    share_ppm: int,
    stored: dict[tuple[Any, ...], tuple[int, int]] | None = None,
    owners: dict[str, str] | None = None,
) -> _Plan:
    """Split and aggregate `events` (the next ones after `watermark`); reads only."""
    parsed = [_decode_attributions(r[6]) for r in events]
    cids = frozenset(a[0] for attrs in parsed for a in attrs)
    if owners is None:
        owners = _owners(db, cids)
    text_dates = db.dialect == "sqlite"
    amounts_of, shares_of = _split_chunk([r[4] * share_ppm // PPM for r in events], parsed)
    # (day, cid, model, method) -> [events, share sum, paid sum, [(event digest, paid)] of the
    # events paid something, earliest of their times, their usage-log positions]: the day
    # bucket's increment and, if anything was paid, the contributor entry (its amount is the
    # bucket's paid sum). Keyed day first: the entries are written in (day, cid, model,
    # method) order.
    acc: dict[tuple[Any, ...], list[Any]] = {}
    protocol: dict[str, list[Any]] = {}  # model -> [amount, demo]
    drops: list[tuple[Any, ...]] = []
    demo_of: dict[str, bool] = {}
    sha256 = hashlib.sha256
    acc_get = acc.get
    for (seq, eid, model_id, at, fee, demo, attrs_text, at_z, day), attrs, amounts, shares in zip(
        events, parsed, amounts_of, shares_of, strict=True
    ):
        if at_z is None:  # SQLite: stored text (or a datetime)
            if text_dates and len(at) >= 26:
                at_z = at[:26].replace(" ", "T") + "Z"
                day = at[:10]
            else:
                at_z = _utc_z(at)
                day = at[:10] if text_dates else at.astimezone(UTC).date()
        digest = sha256(
            f"{eid}\x00{model_id}\x00{at_z}\x00{fee}\x00{attrs_text}".encode()
        ).hexdigest()
        paid = 0
        demo_of[model_id] = bool(demo)
        for a, amount, share in zip(attrs, amounts, shares, strict=True):
            cid = a[0]
            if cid not in owners:
                drops.append((seq, cid, a[2], DROP_NOT_ACCEPTED))
                continue
            key = (day, cid, model_id, a[2])
            slot = acc_get(key)
            if stored is not None:
                n, reward = stored.get((cid, day, model_id, a[2]), (0, 0))
                if slot is not None:
                    n, reward = n + slot[0], reward + slot[2]
                if n + 1 > MAX_BUCKET_EVENTS or reward + amount > MAX_BUCKET_REWARD_MICRO:
                    drops.append((seq, cid, a[2], DROP_BUCKET_FULL))
                    continue
            if slot is None:
                acc[key] = [1, share, amount, [(digest, amount)] if amount else [], at,
                            [seq] if amount else []]  # fmt: skip
            else:
                slot[0] += 1
                slot[1] += share
                if amount:
                    slot[2] += amount
                    slot[3].append((digest, amount))
                    slot[5].append(seq)
                    if at < slot[4] or len(slot[3]) == 1:
                        slot[4] = at
            paid += amount
        if fee != paid:
            p = protocol.setdefault(model_id, [0, bool(demo)])
            p[0] += fee - paid
    seq_from, seq_to = watermark, int(events[-1][0])
    ledger_rows: list[tuple[Any, ...]] = []
    name = f"s{seq_to}"
    paid_at: dict[tuple[str, str], list[int]] = {}  # (cid, method) -> positions paid
    # entries in (day, cid, model, method) order (keys are unique: no slot is ever compared)
    for (_day, cid, model_id, method), (_n, _share, amount, pairs, first, seqs) in sorted(
        acc.items()
    ):
        if not pairs:
            continue
        paid_at.setdefault((cid, method), []).extend(seqs)
        if len(pairs) == 1:
            digest = sha256(f"{pairs[0][0]} {amount}\n".encode()).hexdigest()
        else:
            digest = entry_digest(pairs)
        ledger_rows.append(
            (
                name, KIND_CONTRIBUTOR, cid, owners[cid], model_id, method, amount, first,
                demo_of[model_id], len(pairs), digest, seq_from, seq_to, share_ppm,
            )
        )  # fmt: skip
    # (cid, day, model, method, events, share sum, paid sum); in key order on SQLite (index
    # locality; PostgreSQL's upsert orders them itself)
    bucket_rows = [(k[1], k[0], k[2], k[3], v[0], v[1], v[2]) for k, v in acc.items()]
    if text_dates:
        bucket_rows.sort()
    paid_rows = [
        (cid, method, seq_to, pack_positions(seqs))
        for (cid, method), seqs in sorted(paid_at.items())
    ]
    return _Plan(
        seq_from, seq_to, len(events), owners, cids, ledger_rows, protocol, bucket_rows, drops,
        paid_rows,
    )  # fmt: skip


def _write_plan(
    session: Session, db: BulkDb, plan: _Plan, share_ppm: int, now: datetime
) -> ChunkResult:
    now_v = db.render_datetime(now)
    ledger_rows = list(plan.ledger_rows)
    for model_id, (amount, demo) in sorted(plan.protocol.items()):
        ledger_rows.append(
            (None, KIND_PROTOCOL, None, None, model_id, None, amount, now_v, demo,
             None, None, plan.seq_from, plan.seq_to, share_ppm)
        )  # fmt: skip
    written = db.upsert_add(BUCKETS, BUCKET_COLUMNS, BUCKET_KEY, plan.bucket_rows, BUCKET_LIMITS)
    if written != len(plan.bucket_rows):
        raise BucketFull("a day bucket is full")
    db.insert(LEDGER, LEDGER_COLUMNS, ledger_rows)
    db.insert(DROPS, ("seq", "contribution_id", "method", "reason"), plan.drops)
    db.insert(PAID, PAID_COLUMNS, plan.paid)
    translog.log_entries(session, ledger_rows)  # the new entries become leaves, same commit
    db.fetch(
        "UPDATE settlement_state SET settled_seq = ?, settled_at = ? WHERE id = 1",
        (plan.seq_to, now_v),
    )
    return ChunkResult(plan.events, plan.seq_to, len(ledger_rows))


def plan_next(
    sessions: sessionmaker[Session],
    after: int | None,
    *,
    share_ppm: int,
    limit: int = CHUNK_EVENTS,
) -> _Plan | None:
    """Read and compute the chunk after usage-log position `after` (None: the settled
    watermark as this transaction sees it), in a read-only transaction of its own, without
    any lock: the settler computes the next chunk with it while the current one is being
    written. `settle_chunk` uses the plan only if, under the watermark lock, the watermark is
    still where the plan starts and the chunk's contributions still have the owners the plan
    assumed; otherwise it computes the chunk again."""
    with sessions() as session, _gc_paused():
        db = BulkDb(session)
        if after is None:
            ((after,),) = db.fetch("SELECT settled_seq FROM settlement_state WHERE id = 1")
            after = int(after)
        events = _read_events(db, after, limit)
        plan = _plan(db, events, after, share_ppm) if events else None
        session.rollback()
        return plan


def settle_chunk(
    session: Session,
    *,
    share_ppm: int,
    limit: int = CHUNK_EVENTS,
    now: datetime | None = None,
    careful: bool = False,
    planned: _Plan | None = None,
    on_read: Callable[[int], None] | None = None,
) -> ChunkResult:
    """Settle the next `limit` unsettled events in the session's transaction (the caller
    commits). Raises BucketFull on the fast path if a day bucket is at its limit.

    `planned`: the chunk as `plan_next` computed it beforehand (used if still valid).
    `on_read(seq_to)`: called once the chunk is known, before its writes (the pipelined
    settler starts computing the next chunk then)."""
    now = now or datetime.now(UTC)
    db = BulkDb(session)
    db.tune_for_bulk_writes()
    hold_write_gate(session)
    # The first statement takes the watermark row's lock: one settler at a time.
    db.fetch("UPDATE settlement_state SET settled_seq = settled_seq WHERE id = 1")
    ((watermark,),) = db.fetch("SELECT settled_seq FROM settlement_state WHERE id = 1")
    watermark = int(watermark)
    plan = None
    if planned is not None and not careful and planned.seq_from == watermark:
        if _owners(db, planned.cids) == planned.owners:
            plan = planned
    if plan is None:
        events = _read_events(db, watermark, int(limit))
        if not events:
            return ChunkResult(0, watermark, 0)
        stored = None
        if careful:
            days = [
                r[3][:10] if db.dialect == "sqlite" else r[3].astimezone(UTC).date() for r in events
            ]
            keys = {
                (a[0], day, r[2], a[2])
                for r, day in zip(events, days, strict=True)
                for a in _decode_attributions(r[6])
            }
            stored = _stored_buckets(db, keys)
        plan = _plan(db, events, watermark, share_ppm, stored)
    if on_read is not None:
        on_read(plan.seq_to)
    return _write_plan(session, db, plan, share_ppm, now)


# PostgreSQL's deadlock_detected and serialization_failure; SQLite's "database is locked".
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


def _retryable(exc: BaseException) -> bool:
    driver_error = getattr(exc, "orig", exc)
    if getattr(driver_error, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    return "database is locked" in str(driver_error)


class Pipeline:
    """Computes the next chunk in a helper thread (`plan_next`, its own read-only connection)
    while the current chunk is being written and committed: the split and aggregation of
    chunk n+1 overlap the database's work on chunk n (psycopg releases the GIL while it
    waits). PostgreSQL only: SQLite's writer is in this process, so there is nothing to
    overlap."""

    def __init__(self, sessions: sessionmaker[Session], share_ppm: int, limit: int) -> None:
        self._sessions = sessions
        self._share = share_ppm
        self._limit = limit
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="settle-plan")
        self._next: Future[_Plan | None] | None = None
        self._after = -1

    @staticmethod
    def wanted(sessions: sessionmaker[Session]) -> bool:
        bind = sessions.kw.get("bind")
        return bind is not None and bind.dialect.name == "postgresql"

    def on_read(self, seq_to: int) -> None:
        if self._next is None or self._after != seq_to:
            self._after = seq_to
            self._next = self._pool.submit(self._plan, seq_to)

    def _plan(self, after: int) -> _Plan | None:
        with _short_switch_interval():
            return plan_next(self._sessions, after, share_ppm=self._share, limit=self._limit)

    def take(self) -> _Plan | None:
        """The chunk computed in the background, if any (settle_chunk checks it is current)."""
        future, self._next = self._next, None
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # it is computed again in the settling transaction
            log.debug("planning the next chunk failed", exc_info=True)
            return None

    def close(self) -> None:
        self._next = None
        self._pool.shutdown(wait=True)


def _writer_gated(sessions: sessionmaker[Session]) -> bool:
    bind = sessions.kw.get("bind")
    return bind is not None and bind.dialect.name == "sqlite"


def settle_once(
    sessions: sessionmaker[Session],
    *,
    share_ppm: int,
    limit: int = CHUNK_EVENTS,
    pipeline: Pipeline | None = None,
) -> ChunkResult:
    """Settle one chunk and commit (redone carefully if a day bucket is full). With a
    `pipeline`, the chunk it computed is used if still current, and the next is started.

    On SQLite the chunk is computed before the writer gate is taken (a read transaction of
    its own; used under the gate if still current, as a pipelined plan is): intake's batches
    of this process write and commit while the settler reads and splits, and wait only for
    the settler's writes."""
    careful = False
    if pipeline is not None:
        planned = pipeline.take()
    elif _writer_gated(sessions):
        planned = plan_next(sessions, None, share_ppm=share_ppm, limit=limit)
    else:
        planned = None
    on_read = pipeline.on_read if pipeline is not None else None
    for attempt in range(5):
        with sessions() as session, _gc_paused():
            try:
                result = settle_chunk(
                    session,
                    share_ppm=share_ppm,
                    limit=limit,
                    careful=careful,
                    planned=planned,
                    on_read=on_read,
                )
                session.commit()
                return result
            except BucketFull:
                session.rollback()
                careful = True
            except DBAPIError as exc:
                session.rollback()
                if not _retryable(exc) or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # the driver's own errors (bulk writes bypass SQLAlchemy)
                session.rollback()
                if not _retryable(exc) or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
    raise RuntimeError("settlement did not get through")  # pragma: no cover


def settle_pending(
    sessions: sessionmaker[Session],
    *,
    share_ppm: int,
    limit: int = CHUNK_EVENTS,
    max_chunks: int | None = None,
    pipelined: bool | None = None,
) -> int:
    """Settle chunk after chunk until nothing is left (or `max_chunks`); events settled.
    `pipelined` (default: on PostgreSQL): compute each next chunk while one is written."""
    total = 0
    chunks = 0
    use = Pipeline.wanted(sessions) if pipelined is None else pipelined
    pipeline = Pipeline(sessions, share_ppm, limit) if use else None
    try:
        while max_chunks is None or chunks < max_chunks:
            result = settle_once(sessions, share_ppm=share_ppm, limit=limit, pipeline=pipeline)
            if not result.events:
                break
            total += result.events
            chunks += 1
    finally:
        if pipeline is not None:
            pipeline.close()
    return total


class Settler:
    """The in-process settler of `contributor-registry serve`: a background thread woken after
    each intake commit (and every `poll_s` in case another process appended), plus
    `settle_pending()` for a caller that wants everything settled now (serialised with the
    thread)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        share_ppm: int,
        *,
        chunk: int = CHUNK_EVENTS,
        poll_s: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._share = share_ppm
        self._chunk = chunk
        self._poll = poll_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._pipeline = Pipeline(sessions, share_ppm, chunk) if Pipeline.wanted(sessions) else None

    def settle_pending(self) -> int:
        with self._lock:
            return settle_pending(self._sessions, share_ppm=self._share, limit=self._chunk)

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="settler", daemon=True)
                self._thread.start()
                bind = self._sessions.kw.get("bind")
                if bind is not None and bind.dialect.name == "postgresql":
                    self._listener = threading.Thread(
                        target=self._listen, args=(bind.url,), name="settler-listen", daemon=True
                    )
                    self._listener.start()

    def _listen(self, url: Any) -> None:
        """PostgreSQL: wake the settler on every intake commit of any process (intake
        notifies `USAGE_CHANNEL`; registry.ledger), so settling starts at once, not at the
        next poll. The poll stays as the backstop if this connection is lost."""
        import psycopg

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {USAGE_CHANNEL}")
                    self.wake()  # whatever was appended before the LISTEN
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.2, stop_after=1):
                            self.wake()
            except Exception:
                log.warning("settler: listening for intake failed; polling", exc_info=True)
                self._stop.wait(1.0)

    def wake(self) -> None:
        """Settle soon (if the thread runs: it is started by the app's lifespan)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        with self._start_lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self._listener is not None:
            self._listener.join(timeout)
        if self._pipeline is not None and (thread is None or not thread.is_alive()):
            self._pipeline.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self._lock:
                    # One chunk at a time, so stop() is never kept waiting long.
                    while not self._stop.is_set():
                        result = settle_once(
                            self._sessions,
                            share_ppm=self._share,
                            limit=self._chunk,
                            pipeline=self._pipeline,
                        )
                        if not result.events:
                            break
            except Exception:
                log.exception("settlement failed; retrying")
                self._stop.wait(1.0)


@dataclass(frozen=True)
class SettlementStatus:
    settled_seq: int
    settled_at: datetime | None
    received_seq: int
    unsettled: int


def _status_statement() -> Any:
    """The watermark (0 without a settlement row), when it was set, the log's top, and the
    events between them, in one statement. The count is a range bounded on both sides (the top
    is one backward index step), so PostgreSQL reads an index range even before the log's first
    ANALYZE (with `seq > watermark` alone it scanned the whole log until then)."""
    top = select(func.max(UsageEvent.seq).label("seq")).subquery("top")
    watermark = func.coalesce(SettlementState.settled_seq, 0)
    unsettled = (
        select(func.count())
        .where(UsageEvent.seq > watermark, UsageEvent.seq <= top.c.seq)
        .scalar_subquery()
    )
    return select(watermark, SettlementState.settled_at, top.c.seq, unsettled).select_from(
        top.outerjoin(SettlementState, SettlementState.id == 1)
    )


_STATUS = _status_statement()


def settlement_status(session: Session) -> SettlementStatus:
    """How far settlement has gone (Core execution on the session's connection: the rewards
    page and the usage window read it on every request)."""
    watermark, at, received, unsettled = session.connection().execute(_STATUS).one()
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return SettlementStatus(int(watermark), at, int(received or watermark), int(unsettled or 0))


@dataclass(frozen=True)
class EventSplit:
    seq: int
    event_id: str
    at: datetime
    fee_micro: int
    weight_ppm: int
    amount_micro: int
    digest: str
    attributions: str = ""  # the event's attributions JSON as stored


def entry_events(
    session: Session, entry: LedgerEntry, *, after: int | None = None, limit: int | None = None
) -> list[EventSplit]:
    """The events an aggregated contributor entry commits to, with their exact amounts, in
    sequence order (recomputed from the usage log: the same split the settler made); with
    `after` only those past that usage-log position, with `limit` at most that many.

    Entries settled since paid_attributions exists (migration 0015): the one row of the
    positions the chunk paid the entry's contribution by its method, then the events at
    those positions (a few hundred a read, each found by its position; the model and the day
    checked on the event). Entries settled before have no row: one range read on
    ix_usage_events_model_seq (model, seq, at), the day checked in the index, the
    contribution and method by a LIKE on the stored JSON. Either way the exact checks below
    decide which events count."""
    if entry.seq_from is None or entry.seq_to is None or entry.contribution_id is None:
        return []
    if limit is not None and limit < 1:
        return []
    day: date = (entry.at.astimezone(UTC) if entry.at.tzinfo else entry.at).date()
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    lo = entry.seq_from if after is None else max(entry.seq_from, after)
    share = int(entry.share_ppm or 0)
    out: list[EventSplit] = []

    def wanted() -> int | None:
        """Rows to read next: a few more than still wanted (some may not count)."""
        return None if limit is None else 2 * (limit - len(out)) + 16

    for batch in _entry_candidates(session, entry, day_start, lo, wanted):
        for seq, eid, at, fee, attrs_text in batch:
            at_utc = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
            if at_utc.date() != day:
                continue
            attrs = json.loads(attrs_text)
            for i, (cid, ppm, method, *_) in enumerate(attrs):
                if cid == entry.contribution_id and method == entry.method:
                    amounts, _ = split_event(fee, [a[1] for a in attrs], share)
                    if amounts[i]:
                        digest = event_digest(eid, entry.model_id, _utc_z(at_utc), fee, attrs_text)
                        out.append(
                            EventSplit(
                                int(seq or 0), eid, at_utc, fee, ppm, amounts[i], digest, attrs_text
                            )
                        )
                    break
        if limit is not None and len(out) >= limit:
            break
    return out[:limit]


POSITIONS_PER_READ = 1000  # events read at once by position when all are wanted


def _entry_candidates(
    session: Session,
    entry: LedgerEntry,
    day_start: datetime,
    lo: int,
    wanted: Callable[[], int | None],
) -> Iterator[Sequence[Any]]:
    """`entry_events`' candidate events after position `lo`, in sequence order, a read at a
    time: (seq, event id, at, fee, attributions JSON) of a superset of the entry's events
    without the attributions the settler dropped (never among the paid positions), each read
    `wanted()` rows at most (None: all)."""
    columns = (
        UsageEvent.seq,
        UsageEvent.event_id,
        UsageEvent.at,
        UsageEvent.fee_micro,
        UsageEvent.attributions,
    )
    in_day = (
        UsageEvent.model_id == entry.model_id,
        # a superset of the day (a second of margin for stored text without microseconds)
        UsageEvent.at >= day_start - timedelta(seconds=1),
        UsageEvent.at < day_start + timedelta(days=1),
    )
    packed = session.scalar(
        select(PaidAttribution.positions).where(
            PaidAttribution.contribution_id == entry.contribution_id,
            PaidAttribution.method == entry.method,
            PaidAttribution.chunk == entry.seq_to,
        )
    )
    if packed is not None:
        positions = unpack_positions(packed)
        i = bisect_right(positions, lo)
        while i < len(positions):
            n = wanted() or POSITIONS_PER_READ
            part, i = positions[i : i + n], i + n
            yield session.execute(
                select(*columns).where(UsageEvent.seq.in_(part), *in_day).order_by(UsageEvent.seq)
            ).all()
        return

    def _like(text: str) -> str:
        quoted = json.dumps(text)
        return quoted.replace("/", "//").replace("%", "/%").replace("_", "/_")

    cid = entry.contribution_id or ""
    dropped = set(
        session.scalars(
            select(SettlementDrop.seq).where(
                SettlementDrop.seq > lo,
                SettlementDrop.seq <= entry.seq_to,
                SettlementDrop.contribution_id == cid,
                SettlementDrop.method == entry.method,
            )
        ).all()
    )
    method = "" if entry.method is None else _like(entry.method)
    query = (
        select(*columns)
        .where(
            UsageEvent.seq <= entry.seq_to,
            *in_day,
            # the contribution, then the method, somewhere in the JSON (a superset, too)
            UsageEvent.attributions.like(f"%{_like(cid)}%{method}%", escape="/"),
        )
        .order_by(UsageEvent.seq)
    )
    while True:  # one read, unless the rows read were not enough (some did not count)
        need = wanted()
        batch = session.execute(query.where(UsageEvent.seq > lo).limit(need)).all()
        yield [row for row in batch if row[0] not in dropped] if dropped else batch
        if need is None or len(batch) < need:
            return
        lo = int(batch[-1][0] or 0)
