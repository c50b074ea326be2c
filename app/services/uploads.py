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
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, select, true, update
from sqlalchemy.orm import Session, aliased

from app.domain.gcpause import gc_paused
from app.domain.states import State
from app.services.history import transition
from app.services.upload_batch import id_in
from app.services.upload_state import (
    ContributionSnapshot,
    JobSnapshot,
    QueueEvent,
    QueueSnapshot,
    RegistryStatus,
    build_snapshot,
    read_items,
    read_jobs,
)
from app.services.upload_workers import (
    ACTIVE_ITEM_STATES,
    BATCH_COUNT,
    MAX_CONCURRENCY,
    SMALL_BLOB,
    DiskFullError,
    Listener,
    QueueOptions,
    Task,
    UploadWorkers,
    disk_guard,
    make_client,
)
from app.store.models import Item, utcnow
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


class UploadQueue(UploadWorkers):
    """The queue of one data dir, uploading to ctx.registry_url (see the module doc)."""

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

    @property
    def registry_status(self) -> RegistryStatus:
        return self._status

    def snapshot(self) -> QueueSnapshot:
        """An immutable picture of the queue (DB rows + live progress); thread-safe."""
        # gc paused: 10,000s of row tuples, whose collections cost half the snapshot.
        with gc_paused():
            with self._ctx.db.session() as s:
                conn = s.connection()
                jobs = read_jobs(conn)
                items = read_items(conn, {j.item_id for j in jobs})
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
            # Creates first; then per contribution the largest blobs first (longest job first
            # keeps every worker busy to the end instead of one 512 MiB upload finishing
            # alone after everything else), small-blob batches filling in at the end.
            .order_by(
                UploadJob.kind != JOB_CREATE, UploadJob.item_id, UploadJob.size.desc(), UploadJob.id
            )
        )
        taken: set[int] = set(busy)  # in flight, maybe not claimed yet, or planned here
        batching = self._batch_ok and self.options.batch_bytes > 0
        conn = s.connection()  # Core rows: a batch is thousands of them
        # Batches planned earlier and left over (their chain stopped, e.g. offline) go first.
        out.extend(self._take_planned(limit - len(out)))
        # Re-query after each pass: one small-blob plan takes thousands of the rows behind
        # the one that started it, and a single LIMIT-ed read would then leave the other
        # workers idle.
        while len(out) < limit:
            rows = conn.execute(
                (base.where(~id_in(UploadJob.id, taken)) if taken else base).limit(limit - len(out))
            ).all()
            if not rows:
                break
            for jid, kind, item_id, size in rows:
                if jid in taken or len(out) >= limit:
                    continue
                taken.add(jid)  # also a create skipped below: not looked at again here
                if kind == JOB_CREATE:
                    if item_id not in busy_items:
                        out.append(Task("create", (jid,), item_id))
                        busy_items.add(item_id)
                elif batching and size <= SMALL_BLOB:
                    # With nothing in flight the first batch is half size, so the workers
                    # run out of phase: one reads files while the other waits for the
                    # registry, instead of both reading, then both waiting.
                    first = BATCH_COUNT // 2 if not busy and not out else BATCH_COUNT
                    planned = self._plan_batches(conn, item_id, taken - {jid}, due, first)
                    for ids in planned:
                        taken.update(ids)
                    out.extend(self._take_planned(limit - len(out)))
                else:
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

    def _plan_batches(
        self, conn: Connection, item_id: int, taken: set[int], due: Any, first: int
    ) -> list[tuple[int, ...]]:
        """Every small pending blob of the contribution, cut into batches (the first of
        `first` blobs, then BATCH_COUNT, each within batch_bytes), planned in ONE query.

        The plan is kept in memory (UploadWorkers._plans) and each worker that finishes a
        batch takes the next one itself, without a round through the scheduler: per batch
        that saved two queries over thousands of rows and the workers' idle time between.
        The jobs stay pending in the database until a worker claims them, so a plan is only
        a hint: paused, cancelled or retried jobs are dropped from it (`_set_states`), and a
        job claimed elsewhere is simply not claimed again."""
        with gc_paused():  # 10,000s of row tuples
            rows = conn.execute(
                select(UploadJob.id, UploadJob.size)
                .where(
                    UploadJob.item_id == item_id,
                    UploadJob.kind == JOB_BLOB,
                    UploadJob.state == "pending",
                    UploadJob.size <= SMALL_BLOB,
                    ~id_in(UploadJob.id, taken) if taken else true(),
                    due,
                )
                .order_by(UploadJob.id)
            ).all()
            batches: list[tuple[int, ...]] = []
            ids: list[int] = []
            total, count = 0, first
            for jid, size in rows:
                if ids and (len(ids) >= count or total + size > self.options.batch_bytes):
                    batches.append(tuple(ids))
                    ids, total, count = [], 0, BATCH_COUNT
                ids.append(jid)
                total += size
            if ids:
                batches.append(tuple(ids))
        if batches:
            with self._lock:
                self._plans.setdefault(item_id, deque()).extend(batches)
        return batches

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
        # Threads start lazily; room for the most the settings allow, so set_limits can raise
        # the parallelism of a running queue.
        workers = max(self.options.concurrency, MAX_CONCURRENCY)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="upload")
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
                busy |= self._planned_ids()
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
            self._drop_plans()
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
                self._upload_batches(task.item_id, task.job_ids)
            else:
                self._upload_blob(task.job_ids[0])
        finally:
            self._wake.set()

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
