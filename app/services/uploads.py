"""The persistent upload queue: drains upload jobs to the registry, survives anything.

What makes it safe:
- every job row (state, tus URL, bytes the registry confirmed) is written as it changes, so
  after a crash the next run HEADs the upload URL and re-sends at most the unconfirmed chunk;
- a file-level failure fails that job only; a contribution is finalized only when every one of
  its blobs is confirmed, and finalize is idempotent at the registry;
- "unreachable" (connection refused, timeout, 5xx) pauses the whole queue and probes the
  registry with backoff (1 s → 60 s) until it answers; "says no" (4xx) fails the job with the
  registry's message and the others carry on.

Threading: `run()` schedules on the caller's thread and uploads on `concurrency` worker
threads, each with its own database sessions. `subscribe()` callbacks are called from those
worker threads (and the scheduler's): a GUI must marshal them to its own thread (e.g. a Qt
signal) and should call `snapshot()` from there, throttled.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import exists, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from app.domain.errors import KnownError, RegistryRefused, RegistryUnavailable
from app.domain.states import State
from app.registry_client.api import BatchUnsupported, RegistryClient
from app.registry_client.http import RetryPolicy, Timeouts, Unreachable
from app.registry_client.tus import (
    BandwidthLimiter,
    BlobMismatch,
    ChecksumFailed,
    TusClient,
    UploadHooks,
    UploadStopped,
)
from app.services.context import ServiceContext
from app.services.history import record_event, transition
from app.services.identity import IdentityService, PassphraseFn
from app.services.submit import create_remote, finalize_remote
from app.services.upload_state import (
    ContributionSnapshot,
    JobSnapshot,
    ProgressBook,
    QueueEvent,
    QueueSnapshot,
    RegistryStatus,
    build_snapshot,
)
from app.settings import UPLOAD_BANDWIDTH_KBPS, UPLOAD_CHUNK_MB, UPLOAD_CONCURRENCY
from app.store.models import FileEntry, Item, utcnow
from app.store.queue_models import JOB_BLOB, JOB_CREATE, UploadJob

__all__ = [
    "ContributionSnapshot",
    "DiskFullError",
    "JobSnapshot",
    "QueueEvent",
    "QueueOptions",
    "QueueSnapshot",
    "RegistryStatus",
    "UploadQueue",
    "make_client",
]

log = logging.getLogger(__name__)
ACTIVE_ITEM_STATES = (State.QUEUED.value, State.UPLOADING.value)
Listener = Callable[[QueueEvent], None]


SMALL_BLOB = 256 * 1024  # blobs up to this size travel in batches, not one tus upload each
BATCH_COUNT = 2000


class Task(NamedTuple):
    kind: str  # create | blob | batch | finalize
    job_ids: tuple[int, ...]
    item_id: int


class DiskFullError(KnownError):
    """The disk holding the data folder is full: queue state cannot be saved."""


@contextmanager
def disk_guard() -> Iterator[None]:
    """SQLite says 'database or disk is full' → a KnownError; the transaction rolled back."""
    try:
        yield
    except OperationalError as exc:
        text = str(exc.orig or exc).lower()
        if "full" in text or "disk i/o" in text:
            raise DiskFullError(
                "the disk holding your data folder is full; the upload queue was stopped "
                "and nothing was lost",
                hint="free some space, then run `contributor-desk upload` again",
            ) from exc
        raise


@dataclass(frozen=True, slots=True)
class QueueOptions:
    concurrency: int = 2
    chunk_size: int = 16 * 1024 * 1024
    bandwidth_bytes_per_s: int = 0  # 0 = unlimited
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_bytes: int = 8 * 1024 * 1024  # 0 = no small-blob batches (tus for everything)
    probe_min_s: float = 1.0
    probe_max_s: float = 60.0

    @classmethod
    def from_settings(
        cls,
        ctx: ServiceContext,
        *,
        concurrency: int | None = None,
        chunk_size: int | None = None,
        bandwidth_bytes_per_s: int | None = None,
    ) -> QueueOptions:
        """Options from the user's settings, with explicit overrides (CLI flags, tests)."""
        s = ctx.settings
        return cls(
            concurrency=max(1, concurrency or s.get(UPLOAD_CONCURRENCY)),
            chunk_size=chunk_size or max(1, s.get(UPLOAD_CHUNK_MB)) * 1024 * 1024,
            bandwidth_bytes_per_s=(
                bandwidth_bytes_per_s
                if bandwidth_bytes_per_s is not None
                else max(0, s.get(UPLOAD_BANDWIDTH_KBPS)) * 1024
            ),
        )


def make_client(
    ctx: ServiceContext,
    *,
    passphrase: str | PassphraseFn | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    pool_size: int = 8,
) -> RegistryClient:
    """A client for ctx.registry_url that loads the identity key once, when first needed."""
    lock = threading.Lock()
    cached: list[Ed25519PrivateKey] = []

    def signer() -> Ed25519PrivateKey:
        with lock:
            if not cached:
                cached.append(IdentityService(ctx).load_signer(passphrase))
            return cached[0]

    return RegistryClient(
        ctx.registry_url, signer, timeouts=timeouts, retry=retry, pool_size=pool_size
    )


class UploadQueue:
    """The queue of one data dir, uploading to ctx.registry_url."""

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        options: QueueOptions | None = None,
        client: RegistryClient | None = None,
        passphrase: str | PassphraseFn | None = None,
    ) -> None:
        self._ctx = ctx
        self.options = options or QueueOptions.from_settings(ctx)
        self._own_client = client is None
        self.client = client or make_client(
            ctx,
            passphrase=passphrase,
            timeouts=self.options.timeouts,
            retry=self.options.retry,
            pool_size=self.options.concurrency + 2,
        )
        limiter = (
            BandwidthLimiter(self.options.bandwidth_bytes_per_s)
            if self.options.bandwidth_bytes_per_s > 0
            else None
        )
        self.tus = TusClient(self.client.http, chunk_size=self.options.chunk_size, limiter=limiter)
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._book = ProgressBook()
        self._status = RegistryStatus.UNKNOWN
        self._status_error = ""
        self._probe_delay = self.options.probe_min_s
        self._next_probe: float | None = None
        self._job_stops: dict[int, threading.Event] = {}
        self._finalize_after: dict[int, float] = {}
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._running = False
        self._fatal: BaseException | None = None
        self._rng = random.Random()
        self._batch_ok = True  # until the registry says it has no batch route

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    # -- observing -------------------------------------------------------------------------

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call `callback(QueueEvent)` on every change. Called from WORKER THREADS: marshal
        to your UI thread. Returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _emit(self, event: QueueEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(event)
            except Exception:  # a broken listener must not break the upload
                log.exception("queue listener failed")

    @property
    def registry_status(self) -> RegistryStatus:
        return self._status

    def snapshot(self) -> QueueSnapshot:
        """An immutable picture of the queue (DB rows + live progress); thread-safe."""
        with self._ctx.db.session() as s:
            jobs = list(s.scalars(select(UploadJob).order_by(UploadJob.id)))
            ids = {j.item_id for j in jobs}
            items = list(s.scalars(select(Item).where(Item.id.in_(ids)))) if ids else []
        next_probe = None
        if self._next_probe is not None and self._status is RegistryStatus.OFFLINE:
            next_probe = datetime.now(UTC) + timedelta(
                seconds=max(0.0, self._next_probe - time.monotonic())
            )
        return build_snapshot(
            jobs,
            items,
            self._book,
            registry_url=self.client.base_url,
            status=self._status,
            status_error=self._status_error,
            next_probe_at=next_probe,
            running=self._running,
        )

    # -- controls (any thread) -------------------------------------------------------------

    def _set_states(self, where: list[object], to: str, from_states: tuple[str, ...]) -> int:
        with disk_guard(), self._ctx.db.session() as s:
            rows = s.scalars(
                select(UploadJob).where(*where, UploadJob.state.in_(from_states))  # type: ignore[arg-type]
            ).all()
            for job in rows:
                job.state = to
                job.updated_at = utcnow()
                if to == "pending":
                    job.next_attempt_at = None
                if to in ("paused", "cancelled") and job.id in self._job_stops:
                    self._job_stops[job.id].set()
            ids = [j.id for j in rows]
        for jid in ids:
            self._emit(QueueEvent("job", job_id=jid, message=to))
        self._wake.set()
        return len(ids)

    def pause(self, item_id: int) -> int:
        return self._set_states([UploadJob.item_id == item_id], "paused", ("pending", "uploading"))

    def resume(self, item_id: int) -> int:
        return self._set_states([UploadJob.item_id == item_id], "pending", ("paused",))

    def retry(self, item_id: int) -> int:
        """Failed and paused jobs of a contribution go back to pending (after a fix)."""
        n = self._set_states(
            [UploadJob.item_id == item_id], "pending", ("failed", "paused", "cancelled")
        )
        self._finalize_after.pop(item_id, None)
        return n

    def cancel(self, item_id: int) -> int:
        """Stop uploading a contribution; it goes back to draft (its signature is kept)."""
        n = self._set_states(
            [UploadJob.item_id == item_id],
            "cancelled",
            ("pending", "uploading", "paused", "failed"),
        )
        with disk_guard(), self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is not None and item.state in ACTIVE_ITEM_STATES:
                transition(s, item, State.DRAFT, "cancelled", "upload cancelled by the user")
        self._emit(QueueEvent("contribution", item_id=item_id, message="cancelled"))
        return n

    def pause_job(self, job_id: int) -> int:
        return self._set_states([UploadJob.id == job_id], "paused", ("pending", "uploading"))

    def resume_job(self, job_id: int) -> int:
        return self._set_states([UploadJob.id == job_id], "pending", ("paused",))

    def retry_job(self, job_id: int) -> int:
        return self._set_states([UploadJob.id == job_id], "pending", ("failed", "cancelled"))

    def cancel_job(self, job_id: int) -> int:
        return self._set_states(
            [UploadJob.id == job_id], "cancelled", ("pending", "uploading", "paused", "failed")
        )

    def probe_now(self) -> None:
        """Ask the scheduler to probe the registry at once (e.g. 'Retry now' button)."""
        self._next_probe = time.monotonic()
        self._wake.set()

    def stop(self) -> None:
        """Ask a running `run()` to stop soon; in-flight chunks are abandoned, not lost."""
        self._stop.set()
        for ev in list(self._job_stops.values()):
            ev.set()
        self._wake.set()

    def clear_finished(self) -> int:
        """Forget the job rows of contributions the registry has decided on."""
        with disk_guard(), self._ctx.db.session() as s:
            done = select(Item.id).where(Item.state.in_(("accepted", "rejected", "draft")))
            rows = s.scalars(select(UploadJob).where(UploadJob.item_id.in_(done))).all()
            for r in rows:
                s.delete(r)
            return len(rows)

    # -- registry status -------------------------------------------------------------------

    def _online(self) -> None:
        if self._status is not RegistryStatus.ONLINE:
            self._status, self._status_error = RegistryStatus.ONLINE, ""
            self._probe_delay = self.options.probe_min_s
            self._next_probe = None
            self._emit(QueueEvent("registry", message="online"))

    def _offline(self, exc: BaseException) -> None:
        with self._lock:
            was = self._status
            self._status, self._status_error = RegistryStatus.OFFLINE, _message(exc)
            if was is not RegistryStatus.OFFLINE:
                self._probe_delay = self.options.probe_min_s
                self._next_probe = time.monotonic() + self._probe_delay
        if was is not RegistryStatus.OFFLINE:
            for ev in list(self._job_stops.values()):
                ev.set()  # others would only fail too; they resume from the server's offset
            self._emit(QueueEvent("registry", message=f"offline: {exc}"))

    def _probe(self) -> None:
        try:
            self.client.health(retry=False)
        except (RegistryUnavailable, RegistryRefused) as exc:
            self._probe_delay = min(self.options.probe_max_s, self._probe_delay * 2)
            jitter = self._rng.uniform(0.8, 1.2)
            self._next_probe = time.monotonic() + self._probe_delay * jitter
            self._status_error = _message(exc)
            self._emit(QueueEvent("registry", message=f"offline: {exc}"))
            return
        self._online()

    # -- running ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Jobs left 'uploading' by a crash are pending again (they resume by HEAD)."""
        with disk_guard(), self._ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(UploadJob.state == "uploading")
                .values(state="pending", updated_at=utcnow())
            )

    def _ours(self) -> object:
        return Item.registry_url == self.client.base_url

    def _ready(self, s: Session, busy: set[int], busy_items: set[int], limit: int) -> list[Task]:
        """What can start now: creates, blob uploads (small ones batched), finalizes."""
        now = datetime.now(UTC)
        due = (UploadJob.next_attempt_at.is_(None)) | (UploadJob.next_attempt_at <= now)
        out: list[Task] = []
        base = (
            select(UploadJob.id, UploadJob.kind, UploadJob.item_id, UploadJob.size)
            .join(Item, Item.id == UploadJob.item_id)
            .where(UploadJob.state == "pending", due, Item.state.in_(ACTIVE_ITEM_STATES))
            .where(self._ours())  # type: ignore[arg-type]
            .order_by(UploadJob.kind != JOB_CREATE, UploadJob.id)
        )
        taken: set[int] = set(busy)
        batching = self._batch_ok and self.options.batch_bytes > 0
        for jid, kind, item_id, size in s.execute(base.limit(limit + len(busy))):
            if jid in taken or len(out) >= limit:
                continue
            if kind == JOB_CREATE:
                if item_id not in busy_items:
                    out.append(Task("create", (jid,), item_id))
                    busy_items.add(item_id)
            elif batching and size <= SMALL_BLOB:
                ids = [jid]
                total = size
                for other_id, other_size in s.execute(
                    select(UploadJob.id, UploadJob.size)
                    .where(
                        UploadJob.item_id == item_id,
                        UploadJob.kind == JOB_BLOB,
                        UploadJob.state == "pending",
                        UploadJob.size <= SMALL_BLOB,
                        UploadJob.id != jid,
                        due,
                    )
                    .order_by(UploadJob.id)
                    .limit(BATCH_COUNT + len(taken))
                ):
                    if other_id in taken:
                        continue
                    if len(ids) >= BATCH_COUNT or total + other_size > self.options.batch_bytes:
                        break
                    ids.append(other_id)
                    total += other_size
                taken.update(ids)
                out.append(Task("batch", tuple(ids), item_id))
            else:
                taken.add(jid)
                out.append(Task("blob", (jid,), item_id))
        other = aliased(UploadJob)
        unfinished = exists().where(other.item_id == Item.id, other.state != "done")
        mono = time.monotonic()
        for (item_id,) in s.execute(
            select(Item.id).where(
                Item.state.in_(ACTIVE_ITEM_STATES),
                Item.registry_id.is_not(None),
                ~unfinished,
                self._ours(),  # type: ignore[arg-type]
            )
        ):
            if item_id not in busy_items and self._finalize_after.get(item_id, 0.0) <= mono:
                out.append(Task("finalize", (), item_id))
                busy_items.add(item_id)
        return out

    def _has_work(self, s: Session) -> tuple[bool, datetime | None]:
        """(anything left to do now or later, earliest next_attempt_at)."""
        pending = s.execute(
            select(UploadJob.next_attempt_at)
            .join(Item, Item.id == UploadJob.item_id)
            .where(UploadJob.state.in_(("pending", "uploading")))
            .where(Item.state.in_(ACTIVE_ITEM_STATES), self._ours())  # type: ignore[arg-type]
        ).all()
        times = [t for (t,) in pending if t is not None]
        earliest = min(times) if times else None
        return bool(pending), earliest

    def run(
        self,
        *,
        until_idle: bool = True,
        stop_event: threading.Event | None = None,
        wait_offline: bool = True,
    ) -> QueueSnapshot:
        """Drain the queue. until_idle: return when nothing is left to do (else run until
        stopped). wait_offline=False: return as soon as the registry is found unreachable
        (the queue is kept; snapshot().registry_status says offline)."""
        self._stop = stop_event or threading.Event()
        self._fatal = None
        self._running = True
        self._recover()
        futures: dict[Future[None], Task] = {}
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="upload")
        try:
            while not self._stop.is_set():
                self._reap(futures)
                if self._fatal is not None:
                    raise self._fatal
                if self._status is RegistryStatus.OFFLINE:
                    if not wait_offline:
                        break
                    if not futures and time.monotonic() >= (self._next_probe or 0.0):
                        self._probe()
                    if self._status is RegistryStatus.OFFLINE:
                        delay = (self._next_probe or time.monotonic()) - time.monotonic()
                        self._wake.wait(max(0.05, min(delay, 0.5)))
                        self._wake.clear()
                        continue
                busy = {jid for t in futures.values() for jid in t.job_ids}
                busy_items = {t.item_id for t in futures.values() if t.kind != "blob"}
                free = self.options.concurrency - len(futures)
                if free > 0:
                    with disk_guard(), self._ctx.db.session() as s:
                        ready = self._ready(s, busy, busy_items, free)
                    for task in ready[:free]:
                        futures[pool.submit(self._task, task)] = task
                if not futures:
                    with disk_guard(), self._ctx.db.session() as s:
                        left, earliest = self._has_work(s)
                        finals = self._ready(s, set(), set(), 1)
                    if not left and not finals:
                        self._emit(QueueEvent("idle"))
                        if until_idle:
                            break
                        self._wake.wait(1.0)
                    else:
                        delay = 0.5
                        if earliest is not None:
                            earliest = earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)
                            delay = (earliest - datetime.now(UTC)).total_seconds()
                        self._wake.wait(max(0.05, min(delay, 1.0)))
                    self._wake.clear()
                    continue
                wait(list(futures), timeout=0.5, return_when=FIRST_COMPLETED)
        except BaseException:
            self.stop()
            raise
        finally:
            for ev in list(self._job_stops.values()):
                ev.set()
            pool.shutdown(wait=True)
            self._reap(futures)
            self._running = False
        if self._fatal is not None:
            raise self._fatal
        return self.snapshot()

    def _reap(self, futures: dict[Future[None], Task]) -> None:
        for fut in [f for f in futures if f.done()]:
            futures.pop(fut)
            exc = fut.exception()
            if exc is not None and self._fatal is None:
                self._fatal = exc
                self.stop()

    def _task(self, task: Task) -> None:
        try:
            if task.kind == "create":
                self._create(task.job_ids[0])
            elif task.kind == "finalize":
                self._finalize(task.item_id)
            elif task.kind == "batch":
                self._upload_batch(task.job_ids)
            else:
                self._upload_blob(task.job_ids[0])
        finally:
            self._wake.set()

    # -- tasks -----------------------------------------------------------------------------

    def _job_retry_later(self, job_id: int, exc: BaseException, attempts: int) -> None:
        retry_after = exc.retry_after if isinstance(exc, Unreachable) else None
        delay = (
            retry_after
            if retry_after is not None
            else self._rng.uniform(0, min(30.0, 0.5 * 2 ** min(attempts, 8)))
        )
        with disk_guard(), self._ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            if job.state == "uploading" or job.kind == JOB_CREATE:
                job.state = "pending" if job.state in ("uploading", "pending") else job.state
            job.last_error = str(exc)
            job.next_attempt_at = utcnow() + timedelta(seconds=delay)
            job.updated_at = utcnow()
        if retry_after is None:
            self._offline(exc)

    def _create(self, job_id: int) -> None:
        with disk_guard(), self._ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            item_id, attempts = job.item_id, job.attempts + 1
            job.attempts = attempts
        try:
            with disk_guard():
                result = create_remote(self._ctx, self.client, item_id)
        except RegistryUnavailable as exc:
            self._job_retry_later(job_id, exc, attempts)
            return
        except RegistryRefused as exc:
            self._emit(QueueEvent("contribution", item_id=item_id, message=str(exc)))
            return
        self._online()
        self._emit(QueueEvent("contribution", item_id=item_id, message=result.state.value))

    def _finalize(self, item_id: int) -> None:
        try:
            with disk_guard():
                state = finalize_remote(self._ctx, self.client, item_id)
        except RegistryUnavailable as exc:
            self._finalize_after[item_id] = time.monotonic() + self._rng.uniform(0.5, 2.0)
            self._offline(exc)
            return
        except RegistryRefused as exc:
            # e.g. the contribution vanished: say so once and leave it for `sync`/the user.
            self._finalize_after[item_id] = time.monotonic() + 3600.0
            with disk_guard(), self._ctx.db.session() as s:
                record_event(s, s.get_one(Item, item_id), "finalize-refused", exc.message)
            self._emit(QueueEvent("contribution", item_id=item_id, message=str(exc)))
            return
        self._online()
        self._emit(QueueEvent("contribution", item_id=item_id, message=state.value))

    @staticmethod
    def _entries(s: Session, item_id: int, paths: list[str]) -> dict[str, FileEntry]:
        out: dict[str, FileEntry] = {}
        for start in range(0, len(paths), 500):
            part = paths[start : start + 500]
            for f in s.scalars(
                select(FileEntry).where(FileEntry.item_id == item_id, FileEntry.path.in_(part))
            ):
                out[f.path] = f
        return out

    def _source(
        self,
        s: Session,
        job: UploadJob,
        item: Item,
        entries: dict[str, FileEntry] | None = None,
    ) -> tuple[Path | None, str]:
        """A file carrying this blob that is unchanged since submit, or why there is none."""
        if entries is None:
            entries = self._entries(s, item.id, [str(p) for p in job.paths])
        why = ""
        for rel in job.paths:
            entry = entries.get(rel)
            path = Path(item.source_path) / rel
            try:
                st = path.stat()
            except OSError:
                why = why or f"{rel} is missing (it was moved or deleted after submit)"
                continue
            if entry is not None and st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns:
                return path, ""
            why = why or f"{rel} was modified after submit"
        return None, why

    def _stop_contribution(self, s: Session, item: Item, job: UploadJob, reason: str) -> None:
        job.state, job.last_error, job.updated_at = "failed", reason, utcnow()
        s.execute(
            update(UploadJob)
            .where(
                UploadJob.item_id == item.id,
                UploadJob.id != job.id,
                UploadJob.state.in_(("pending", "uploading")),
            )
            .values(state="paused", last_error=f"stopped: {reason}", updated_at=utcnow())
        )
        for jid, ev in list(self._job_stops.items()):
            if jid != job.id:
                ev.set()
        record_event(s, item, "upload-stopped", f"{reason}; restore it and retry, or re-add")

    def _upload_blob(self, job_id: int) -> None:
        # The start is serialised so two workers never both move the item queued → uploading.
        with self._start_lock, disk_guard(), self._ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            item = s.get_one(Item, job.item_id)
            if job.state != "pending" or item.registry_id is None:
                return
            path, why = self._source(s, job, item)
            if path is None:
                self._stop_contribution(s, item, job, why)
                stopped = why
            else:
                stopped = ""
                job.state, job.attempts, job.updated_at = "uploading", job.attempts + 1, utcnow()
                if item.state == State.QUEUED.value:
                    transition(s, item, State.UPLOADING, "uploading", "")
            item_id, size, sha, url = job.item_id, job.size, job.sha256, job.upload_url
            registry_id, attempts, name = item.registry_id, job.attempts, job.paths[0]
            confirmed = job.bytes_confirmed
        if path is None:
            self._emit(QueueEvent("contribution", item_id=item_id, job_id=job_id, message=stopped))
            return
        stop = threading.Event()
        if self._stop.is_set():
            stop.set()
        self._job_stops[job_id] = stop
        self._book.start(job_id, item_id, size, confirmed)
        self._emit(QueueEvent("job", item_id=item_id, job_id=job_id, message="uploading"))
        try:
            self.tus.upload(
                path,
                size,
                {"sha256": sha, "contribution": registry_id, "filename": name.rsplit("/")[-1]},
                url=url,
                hooks=UploadHooks(
                    on_url=lambda u: self._save(job_id, upload_url=u, bytes_confirmed=0),
                    on_confirmed=lambda off: self._confirmed(job_id, item_id, off),
                    on_sent=lambda n: self._book.sent(job_id, n),
                ),
                stop=stop,
            )
        except UploadStopped:
            with disk_guard(), self._ctx.db.session() as s:
                job = s.get_one(UploadJob, job_id)
                if job.state == "uploading":
                    job.state, job.updated_at = "pending", utcnow()
            if self._status is RegistryStatus.OFFLINE:
                return
            return
        except RegistryUnavailable as exc:
            self._job_retry_later(job_id, exc, attempts)
            return
        except (RegistryRefused, BlobMismatch, ChecksumFailed, OSError) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            with disk_guard(), self._ctx.db.session() as s:
                job = s.get_one(UploadJob, job_id)
                item = s.get_one(Item, item_id)
                if isinstance(exc, RegistryRefused):
                    job.state, job.last_error, job.updated_at = "failed", reason, utcnow()
                else:
                    self._stop_contribution(s, item, job, f"{name}: {reason}")
            self._emit(QueueEvent("job", item_id=item_id, job_id=job_id, message=reason))
            return
        finally:
            self._job_stops.pop(job_id, None)
            self._book.finish(job_id)
        with disk_guard(), self._ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            job.state, job.bytes_confirmed, job.last_error = "done", size, ""
            job.next_attempt_at, job.updated_at = None, utcnow()
        self._online()
        self._emit(QueueEvent("job", item_id=item_id, job_id=job_id, message="done"))

    def _upload_batch(self, job_ids: tuple[int, ...]) -> None:
        """Many small blobs of one contribution in one request (POST /v1/uploads/batch)."""
        blobs: list[tuple[str, int, Path]] = []
        job_of: dict[str, list[int]] = {}
        with self._start_lock, disk_guard(), self._ctx.db.session() as s:
            jobs = list(s.scalars(select(UploadJob).where(UploadJob.id.in_(job_ids))))
            jobs = [j for j in jobs if j.state == "pending"]
            if not jobs:
                return
            item = s.get_one(Item, jobs[0].item_id)
            if item.registry_id is None:
                return
            entries = self._entries(s, item.id, [str(p) for j in jobs for p in j.paths])
            for job in jobs:
                path, why = self._source(s, job, item, entries)
                if path is None:
                    self._stop_contribution(s, item, job, why)
                    stopped = (item.id, job.id, why)
                    break
                blobs.append((job.sha256, job.size, path))
                job_of.setdefault(job.sha256, []).append(job.id)
            else:
                stopped = None
                for job in jobs:
                    job.state, job.attempts, job.updated_at = (
                        "uploading",
                        job.attempts + 1,
                        utcnow(),
                    )
                if item.state == State.QUEUED.value:
                    transition(s, item, State.UPLOADING, "uploading", "")
            item_id, registry_id, attempts = item.id, item.registry_id, jobs[0].attempts
        if stopped is not None:
            self._emit(
                QueueEvent(
                    "contribution", item_id=stopped[0], job_id=stopped[1], message=stopped[2]
                )
            )
            return
        ids = [jid for group in job_of.values() for jid in group]
        try:
            result = self.client.upload_batch(registry_id, blobs)
        except BatchUnsupported:
            self._batch_ok = False
            self._set_states([UploadJob.id.in_(ids)], "pending", ("uploading",))
            return
        except RegistryUnavailable as exc:
            for jid in ids:
                self._job_retry_later(jid, exc, attempts)
            return
        except (RegistryRefused, OSError) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            self._set_states([UploadJob.id.in_(ids)], "failed", ("uploading",))
            self._save_many(ids, last_error=reason)
            return
        done = [jid for sha in (*result.stored, *result.present) for jid in job_of.get(sha, [])]
        with disk_guard(), self._ctx.db.session() as s:
            for job in s.scalars(select(UploadJob).where(UploadJob.id.in_(done))):
                job.state, job.bytes_confirmed, job.last_error = "done", job.size, ""
                job.next_attempt_at, job.updated_at = None, utcnow()
            if result.rejected:
                item = s.get_one(Item, item_id)
                sha, why = next(iter(result.rejected.items()))
                bad = s.get_one(UploadJob, job_of[sha][0])
                self._stop_contribution(s, item, bad, f"{bad.paths[0]}: rejected ({why})")
                for job in s.scalars(select(UploadJob).where(UploadJob.id.in_(ids))):
                    if job.state == "uploading":
                        job.state = "paused"
        self._online()
        for jid in done:
            self._emit(QueueEvent("job", item_id=item_id, job_id=jid, message="done"))
        self._emit(QueueEvent("progress", item_id=item_id))

    def _save_many(self, job_ids: list[int], **values: object) -> None:
        with disk_guard(), self._ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(UploadJob.id.in_(job_ids))
                .values(**values, updated_at=utcnow())
            )

    def _save(self, job_id: int, **values: object) -> None:
        with disk_guard(), self._ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(UploadJob.id == job_id)
                .values(**values, updated_at=utcnow())
            )

    def _confirmed(self, job_id: int, item_id: int, offset: int) -> None:
        self._save(job_id, bytes_confirmed=offset)
        self._book.confirmed(job_id, offset)
        self._online()
        self._emit(QueueEvent("progress", item_id=item_id, job_id=job_id))

    # -- sync ------------------------------------------------------------------------------

    def sync(self) -> list[tuple[int, State]]:
        """Refresh submitted contributions' states from the registry (accepted/rejected)."""
        from app.services.submit import apply_status

        with self._ctx.db.session() as s:
            rows = s.execute(
                select(Item.id, Item.registry_id).where(
                    Item.registry_id.is_not(None),
                    Item.state.in_(("submitted", "uploading", "queued")),
                    self._ours(),  # type: ignore[arg-type]
                )
            ).all()
        out: list[tuple[int, State]] = []
        for item_id, registry_id in rows:
            status = self.client.get_contribution(str(registry_id))
            if status.state == "submitted":
                out.append((item_id, State(self._item_state(item_id))))
                continue
            with disk_guard():
                out.append((item_id, apply_status(self._ctx, item_id, status)))
        self._online()
        return out

    def _item_state(self, item_id: int) -> str:
        with self._ctx.db.session() as s:
            return s.get_one(Item, item_id).state


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, KnownError) else str(exc)
