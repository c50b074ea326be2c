"""What the upload queue shows the world: immutable snapshots, events, live progress.

Kept apart from the queue's machinery so the GUI (and tests) can read exactly what they may
rely on: QueueSnapshot and its parts are frozen dataclasses, safe to hand across threads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Connection, String, select, type_coerce

from app.domain.states import JobKind, JobState, State
from app.store.models import Item
from app.store.queue_models import UploadJob

RATE_WINDOW_S = 5.0
log = logging.getLogger(__name__)


class RegistryStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # unreachable: the queue waits and probes with backoff
    UNKNOWN = "unknown"  # not contacted yet


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """Something changed. kind: progress | job | contribution | registry | idle.

    Delivered on worker threads; carry ids only — call UploadQueue.snapshot() for data."""

    kind: str
    item_id: int | None = None
    job_id: int | None = None
    message: str = ""


class JobSnapshot(NamedTuple):
    """One job as the queue shows it. A NamedTuple rather than a frozen dataclass: just as
    immutable, and a snapshot of a 10,000-file contribution builds 10,000 of them."""

    id: int
    item_id: int
    kind: str  # a JobKind value
    sha256: str
    paths: tuple[str, ...]
    size: int
    state: str  # a JobState value
    attempts: int
    last_error: str
    bytes_confirmed: int  # the registry has these bytes (fsynced)
    bytes_sent: int  # confirmed + in flight (what a progress bar shows)
    rate_bps: float
    eta_s: float | None
    next_attempt_at: datetime | None
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "itemId": self.item_id,
            "kind": self.kind,
            "sha256": self.sha256,
            "paths": list(self.paths),
            "size": self.size,
            "state": self.state,
            "attempts": self.attempts,
            "lastError": self.last_error,
            "bytesConfirmed": self.bytes_confirmed,
            "nextAttemptAt": _iso(self.next_attempt_at),
            "updatedAt": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class ContributionSnapshot:
    item_id: int
    title: str
    state: str  # the item's lifecycle state (queued, uploading, submitted, accepted, ...)
    registry_id: str | None
    total_bytes: int  # bytes this contribution has to upload (missing blobs only)
    bytes_sent: int
    bytes_confirmed: int
    rate_bps: float
    eta_s: float | None
    jobs_total: int
    jobs_done: int
    jobs_failed: int
    jobs_paused: int
    last_error: str
    rejection_reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "itemId": self.item_id,
            "title": self.title,
            "state": self.state,
            "registryId": self.registry_id,
            "totalBytes": self.total_bytes,
            "bytesConfirmed": self.bytes_confirmed,
            "jobsTotal": self.jobs_total,
            "jobsDone": self.jobs_done,
            "jobsFailed": self.jobs_failed,
            "jobsPaused": self.jobs_paused,
            "lastError": self.last_error,
            "rejectionReasons": list(self.rejection_reasons),
        }


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    taken_at: datetime
    registry_url: str
    registry_status: RegistryStatus
    registry_error: str
    next_probe_at: datetime | None  # when offline: the next reachability probe
    running: bool
    jobs: tuple[JobSnapshot, ...]
    contributions: tuple[ContributionSnapshot, ...]
    total_bytes: int
    bytes_sent: int
    bytes_confirmed: int
    rate_bps: float
    eta_s: float | None

    @property
    def active(self) -> bool:
        """Work is left that the queue will do by itself (pending or uploading jobs)."""
        return any(j.state in (JobState.PENDING, JobState.UPLOADING) for j in self.jobs) or any(
            c.state in (State.QUEUED, State.UPLOADING) and c.jobs_failed == 0 and c.jobs_paused == 0
            for c in self.contributions
        )

    @property
    def failed(self) -> tuple[JobSnapshot, ...]:
        return tuple(j for j in self.jobs if j.state == JobState.FAILED)

    def to_json(self) -> dict[str, Any]:
        return {
            "takenAt": _iso(self.taken_at),
            "registry": self.registry_url,
            "registryStatus": self.registry_status.value,
            "registryError": self.registry_error,
            "nextProbeAt": _iso(self.next_probe_at),
            "totalBytes": self.total_bytes,
            "bytesConfirmed": self.bytes_confirmed,
            "contributions": [c.to_json() for c in self.contributions],
            "jobs": [j.to_json() for j in self.jobs],
        }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


@dataclass
class _Live:
    item_id: int
    size: int
    confirmed: int
    sent: int
    samples: deque[tuple[float, int]]


Listener = Callable[[QueueEvent], None]


class Events:
    """The queue's listeners; `emit` calls them on the emitting (worker) thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def emit(self, event: QueueEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(event)
            except Exception:  # a broken listener must not break the upload
                log.exception("queue listener failed")

    def emit_many(self, events: list[QueueEvent]) -> None:
        for event in events:
            self.emit(event)


class ProgressBook:
    """Live bytes of the uploads in flight, fed from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, _Live] = {}

    def start(self, job_id: int, item_id: int, size: int, confirmed: int) -> None:
        with self._lock:
            self._live[job_id] = _Live(
                item_id, size, confirmed, confirmed, deque([(time.monotonic(), confirmed)])
            )

    def sent(self, job_id: int, n: int) -> None:
        with self._lock:
            live = self._live.get(job_id)
            if live is None:
                return
            live.sent = min(live.size, live.sent + n)
            now = time.monotonic()
            live.samples.append((now, live.sent))
            while len(live.samples) > 2 and now - live.samples[0][0] > RATE_WINDOW_S:
                live.samples.popleft()

    def confirmed(self, job_id: int, offset: int) -> None:
        with self._lock:
            live = self._live.get(job_id)
            if live is not None:
                live.confirmed = offset
                live.sent = max(live.sent, offset)

    def finish(self, job_id: int) -> None:
        with self._lock:
            self._live.pop(job_id, None)

    def view(self, job_id: int) -> tuple[int, float] | None:
        """(bytes sent, bytes per second) of a running job, None when not running."""
        with self._lock:
            live = self._live.get(job_id)
            return None if live is None else _rate(live, time.monotonic())

    def views(self) -> dict[int, tuple[int, float]]:
        """`view` of every running job at once (one lock, not one per job of the queue)."""
        with self._lock:
            now = time.monotonic()
            return {job_id: _rate(live, now) for job_id, live in self._live.items()}


def _rate(live: _Live, now: float) -> tuple[int, float]:
    (t0, b0), (t1, b1) = live.samples[0], live.samples[-1]
    span = max(now - t0, 1e-6)
    return live.sent, (b1 - b0) / span if t1 > t0 else 0.0


def _eta(left: int, rate: float) -> float | None:
    if left <= 0:
        return 0.0
    return left / rate if rate > 0 else None


class JobRow(NamedTuple):
    """The columns of an upload job a snapshot shows, read as plain rows (read_jobs):
    building 10,000 ORM objects for every progress refresh costs more than the upload."""

    id: int
    item_id: int
    kind: str
    sha256: str
    paths: list[Any]
    size: int
    state: str
    attempts: int
    last_error: str
    bytes_confirmed: int
    next_attempt_at: datetime | None
    updated_at: datetime


_RAW_COLUMNS = (
    UploadJob.id,
    UploadJob.item_id,
    UploadJob.kind,
    UploadJob.sha256,
    type_coerce(UploadJob.paths, String),  # JSON text: decoded all at once below
    UploadJob.size,
    UploadJob.state,
    UploadJob.attempts,
    UploadJob.last_error,
    UploadJob.bytes_confirmed,
    type_coerce(UploadJob.next_attempt_at, String),  # ISO text: datetime.fromisoformat
    type_coerce(UploadJob.updated_at, String),
)


class ItemRow(NamedTuple):
    """The columns of a catalogue item a snapshot shows (read_items): not the whole Item,
    whose detection report of a 10,000-file dataset is ~1 MB of JSON to decode."""

    id: int
    title: str
    state: str
    registry_id: str | None
    rejection_reasons: list[Any]


def read_items(conn: Connection, ids: set[int]) -> list[ItemRow]:
    """The ItemRows of the given item ids."""
    if not ids:
        return []
    rows = conn.execute(
        select(Item.id, Item.title, Item.state, Item.registry_id, Item.rejection_reasons).where(
            Item.id.in_(sorted(ids))
        )
    ).all()
    return [ItemRow(i, t, st, rid, list(reasons or [])) for i, t, st, rid, reasons in rows]


def read_jobs(conn: Connection) -> list[JobRow]:
    """Every job of the queue as JobRows, in id order.

    Why not ORM objects or typed columns: a snapshot of a 10,000-file contribution is
    10,000 rows, and per-row JSON and datetime processing cost more than the query. The
    paths texts are parsed as ONE JSON array; datetimes are SQLAlchemy's SQLite text form
    (naive, as the typed column would return them)."""
    rows = conn.execute(select(*_RAW_COLUMNS).order_by(UploadJob.id)).all()
    paths = json.loads("[" + ",".join(r[4] or "[]" for r in rows) + "]")
    return [
        JobRow(
            r[0], r[1], r[2], r[3], p, r[5], r[6], r[7], r[8], r[9],
            _stamp(r[10]), _stamp(r[11]) or _EPOCH,
        )
        for r, p in zip(rows, paths, strict=True)
    ]  # fmt: skip


_EPOCH = datetime(1970, 1, 1)


def _stamp(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def build_snapshot(
    jobs: Sequence[JobRow],
    items: Sequence[ItemRow],
    book: ProgressBook,
    *,
    registry_url: str,
    status: RegistryStatus,
    status_error: str,
    next_probe_at: datetime | None,
    running: bool,
) -> QueueSnapshot:
    job_views: list[JobSnapshot] = []
    live_views = book.views()
    view = JobSnapshot
    for j in jobs:
        size, state = j.size, j.state
        live = live_views.get(j.id)
        sent, rate = live if live is not None else (j.bytes_confirmed, 0.0)
        if state == JobState.DONE:
            sent = size
        job_views.append(
            view(
                j.id, j.item_id, j.kind, j.sha256, tuple(j.paths), size, state, j.attempts,
                j.last_error, size if state == JobState.DONE else j.bytes_confirmed, sent, rate,
                _eta(size - sent, rate) if state == JobState.UPLOADING else None,
                j.next_attempt_at, j.updated_at,
            )
        )  # fmt: skip
    by_item: dict[int, list[JobSnapshot]] = {}  # one pass, not one scan of every job per item
    for v in job_views:
        by_item.setdefault(v.item_id, []).append(v)
    contributions: list[ContributionSnapshot] = []
    for item in sorted(items, key=lambda i: i.id):
        every = by_item.get(item.id, [])
        mine = [v for v in every if v.kind == JobKind.BLOB]
        total = sum(v.size for v in mine)
        sent = sum(v.bytes_sent for v in mine)
        rate = sum(v.rate_bps for v in mine)
        errors = [v.last_error for v in every if v.last_error and v.state != JobState.DONE]
        contributions.append(
            ContributionSnapshot(
                item_id=item.id,
                title=item.title,
                state=item.state,
                registry_id=item.registry_id,
                total_bytes=total,
                bytes_sent=sent,
                bytes_confirmed=sum(v.bytes_confirmed for v in mine),
                rate_bps=rate,
                eta_s=_eta(total - sent, rate),
                jobs_total=len(mine),
                jobs_done=sum(1 for v in mine if v.state == JobState.DONE),
                jobs_failed=sum(1 for v in every if v.state == JobState.FAILED),
                jobs_paused=sum(1 for v in every if v.state == JobState.PAUSED),
                last_error=errors[0] if errors else "",
                rejection_reasons=tuple(
                    str(r.get("message", r)) if isinstance(r, dict) else str(r)
                    for r in (item.rejection_reasons or [])
                ),
            )
        )
    total = sum(c.total_bytes for c in contributions)
    sent = sum(c.bytes_sent for c in contributions)
    rate = sum(c.rate_bps for c in contributions)
    return QueueSnapshot(
        taken_at=datetime.now(UTC),
        registry_url=registry_url,
        registry_status=status,
        registry_error=status_error,
        next_probe_at=next_probe_at,
        running=running,
        jobs=tuple(job_views),
        contributions=tuple(contributions),
        total_bytes=total,
        bytes_sent=sent,
        bytes_confirmed=sum(c.bytes_confirmed for c in contributions),
        rate_bps=rate,
        eta_s=_eta(total - sent, rate),
    )
