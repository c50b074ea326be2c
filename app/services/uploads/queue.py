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

The queue is composed of: Runtime (client, tus, options, stop/wake), RegistryLink (online or
offline, probing), Plans (small-blob batches planned ahead), JobTable (the job rows),
Scheduler (what can start now), Workers (one task on a worker thread), Events and
ProgressBook (what observers see).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

from sqlalchemy import select

from app.domain.states import JobState, State, TaskKind
from app.durable import gc_paused
from app.registry_client.api import RegistryClient
from app.registry_client.tus import BandwidthLimiter, TusClient
from app.services.context import ServiceContext
from app.services.history import transition
from app.services.identity import PassphraseFn
from app.services.uploads.jobs import JobTable
from app.services.uploads.link import RegistryLink
from app.services.uploads.options import (
    ACTIVE_ITEM_STATES,
    MAX_CONCURRENCY,
    QueueOptions,
    Task,
    disk_guard,
)
from app.services.uploads.plans import Plans
from app.services.uploads.progress import (
    Events,
    Listener,
    ProgressBook,
    QueueEvent,
    QueueSnapshot,
    RegistryStatus,
    build_snapshot,
    read_items,
    read_jobs,
)
from app.services.uploads.remote import apply_status
from app.services.uploads.runtime import Runtime
from app.services.uploads.scheduler import Scheduler
from app.services.uploads.workers import Workers
from app.store.models import Item
from app.store.queue_models import UploadJob

_STOPPABLE = (JobState.PENDING, JobState.UPLOADING)
_CANCELLABLE = (JobState.PENDING, JobState.UPLOADING, JobState.PAUSED, JobState.FAILED)
# Contributions whose fate the registry decides: `sync` asks about these.
_SYNCED = (State.SUBMITTED, State.PENDING_REVIEW, State.UPLOADING, State.QUEUED)


class UploadQueue:
    """The queue of one data dir, uploading to ctx.registry_url (see the module doc)."""

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        options: QueueOptions | None = None,
        client: RegistryClient | None = None,
        passphrase: str | PassphraseFn | None = None,
    ) -> None:
        self._ctx = ctx
        self._rt = Runtime(ctx, options or QueueOptions.from_settings(ctx), client, passphrase)
        self._events = Events()
        self._book = ProgressBook()
        self._link = RegistryLink(self._rt, self._events)
        self._plans = Plans(self._rt, self._link)
        self._jobs = JobTable(self._rt, self._link, self._plans, self._events)
        self._scheduler = Scheduler(self._rt, self._plans)
        self._workers = Workers(
            self._rt, self._link, self._jobs, self._plans, self._events, self._book
        )

    @property
    def options(self) -> QueueOptions:
        return self._rt.options

    @property
    def client(self) -> RegistryClient:
        return self._rt.client

    @property
    def limiter(self) -> BandwidthLimiter:
        return self._rt.limiter

    @property
    def tus(self) -> TusClient:
        return self._rt.tus

    # -- observing -------------------------------------------------------------------------

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call `callback(QueueEvent)` on every change. Called from WORKER THREADS: marshal
        to your UI thread. Returns a function that unsubscribes."""
        return self._events.subscribe(callback)

    @property
    def registry_status(self) -> RegistryStatus:
        return self._link.status

    def snapshot(self) -> QueueSnapshot:
        """An immutable picture of the queue (DB rows + live progress); thread-safe."""
        # gc paused: 10,000s of row tuples, whose collections cost half the snapshot.
        with gc_paused():
            with self._ctx.db.session() as s:
                conn = s.connection()
                jobs = read_jobs(conn)
                items = read_items(conn, {j.item_id for j in jobs})
            return build_snapshot(
                jobs,
                items,
                self._book,
                registry_url=self.client.base_url,
                status=self._link.status,
                status_error=self._link.error,
                next_probe_at=self._link.next_probe_at(),
                running=self._rt.running,
            )

    # -- controls (any thread) -------------------------------------------------------------

    def pause(self, item_id: int) -> int:
        return self._jobs.set_states([UploadJob.item_id == item_id], JobState.PAUSED, _STOPPABLE)

    def resume(self, item_id: int) -> int:
        return self._jobs.set_states(
            [UploadJob.item_id == item_id], JobState.PENDING, (JobState.PAUSED,)
        )

    def retry(self, item_id: int) -> int:
        """Failed and paused jobs of a contribution go back to pending (after a fix)."""
        n = self._jobs.set_states(
            [UploadJob.item_id == item_id],
            JobState.PENDING,
            (JobState.FAILED, JobState.PAUSED, JobState.CANCELLED),
        )
        self._rt.finalize_after.pop(item_id, None)
        return n

    def cancel(self, item_id: int) -> int:
        """Stop uploading a contribution; it goes back to draft (its signature is kept)."""
        n = self._jobs.set_states([UploadJob.item_id == item_id], JobState.CANCELLED, _CANCELLABLE)
        with disk_guard(), self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is not None and item.state in ACTIVE_ITEM_STATES:
                transition(s, item, State.DRAFT, "cancelled", "upload cancelled by the user")
        self._events.emit(QueueEvent("contribution", item_id=item_id, message="cancelled"))
        return n

    def pause_job(self, job_id: int) -> int:
        return self._jobs.set_states([UploadJob.id == job_id], JobState.PAUSED, _STOPPABLE)

    def resume_job(self, job_id: int) -> int:
        return self._jobs.set_states([UploadJob.id == job_id], JobState.PENDING, (JobState.PAUSED,))

    def retry_job(self, job_id: int) -> int:
        return self._jobs.set_states(
            [UploadJob.id == job_id], JobState.PENDING, (JobState.FAILED, JobState.CANCELLED)
        )

    def cancel_job(self, job_id: int) -> int:
        return self._jobs.set_states([UploadJob.id == job_id], JobState.CANCELLED, _CANCELLABLE)

    def probe_now(self) -> None:
        """Ask the scheduler to probe the registry at once (e.g. 'Retry now' button)."""
        self._link.probe_now()
        self._rt.wake.set()

    def set_limits(
        self, *, bandwidth_bytes_per_s: int | None = None, concurrency: int | None = None
    ) -> None:
        """Apply a new bandwidth limit (0 = unlimited) or parallelism to running uploads:
        the next block read obeys the rate, the scheduler's next round the parallelism."""
        self._rt.set_limits(bandwidth_bytes_per_s=bandwidth_bytes_per_s, concurrency=concurrency)

    def stop(self) -> None:
        """Ask a running `run()` to stop soon; in-flight chunks are abandoned, not lost."""
        self._rt.stop.set()
        self._rt.stop_uploads()
        self._rt.wake.set()

    def clear_finished(self) -> int:
        """Forget the job rows of contributions the registry has decided on."""
        return self._jobs.clear_finished()

    def close(self) -> None:
        self._rt.close()

    # -- running ---------------------------------------------------------------------------

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
        rt, link, scheduler = self._rt, self._link, self._scheduler
        rt.stop = stop_event or threading.Event()
        rt.fatal = None
        rt.running = True
        self._jobs.recover()
        futures: dict[Future[None], Task] = {}
        # Threads start lazily; room for the most the settings allow, so set_limits can raise
        # the parallelism of a running queue.
        workers = max(rt.options.concurrency, MAX_CONCURRENCY)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="upload")
        try:
            while not rt.stop.is_set():
                self._reap(futures)
                if rt.fatal is not None:
                    raise rt.fatal
                if link.offline:
                    if not wait_offline:
                        break
                    if not futures and time.monotonic() >= (link.next_probe or 0.0):
                        link.probe()
                    if link.offline:
                        delay = (link.next_probe or time.monotonic()) - time.monotonic()
                        rt.wake.wait(max(0.05, min(delay, 0.5)))
                        rt.wake.clear()
                        continue
                busy = {jid for t in futures.values() for jid in t.job_ids}
                busy |= self._plans.planned_ids()
                busy_items = {t.item_id for t in futures.values() if t.kind is not TaskKind.BLOB}
                free = rt.options.concurrency - len(futures)
                if free > 0:
                    with disk_guard(), self._ctx.db.session() as s:
                        ready = scheduler.ready(s, busy, busy_items, free)
                    for task in ready[:free]:
                        futures[pool.submit(self._workers.run, task)] = task
                if not futures:
                    with disk_guard(), self._ctx.db.session() as s:
                        left, earliest = scheduler.has_work(s)
                        finals = scheduler.ready(s, set(), set(), 1)
                    if not left and not finals:
                        self._events.emit(QueueEvent("idle"))
                        if until_idle:
                            break
                        rt.wake.wait(1.0)
                    else:
                        delay = 0.5
                        if earliest is not None:
                            earliest = earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)
                            delay = (earliest - datetime.now(UTC)).total_seconds()
                        rt.wake.wait(max(0.05, min(delay, 1.0)))
                    rt.wake.clear()
                    continue
                wait(list(futures), timeout=0.5, return_when=FIRST_COMPLETED)
        except BaseException:
            self.stop()
            raise
        finally:
            rt.stop_uploads()
            pool.shutdown(wait=True)
            self._reap(futures)
            self._plans.drop()
            rt.running = False
        if rt.fatal is not None:
            raise rt.fatal
        return self.snapshot()

    def _reap(self, futures: dict[Future[None], Task]) -> None:
        for fut in [f for f in futures if f.done()]:
            futures.pop(fut)
            exc = fut.exception()
            if exc is not None and self._rt.fatal is None:
                self._rt.fatal = exc
                self.stop()

    # -- sync ------------------------------------------------------------------------------

    def sync(self) -> list[tuple[int, State]]:
        """Refresh submitted contributions' states from the registry (accepted/rejected)."""
        with self._ctx.db.session() as s:
            rows = s.execute(
                select(Item.id, Item.registry_id).where(
                    Item.registry_id.is_not(None),
                    Item.state.in_([st.value for st in _SYNCED]),
                    self._scheduler.ours(),
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
        self._link.went_online()
        return out

    def _item_state(self, item_id: int) -> str:
        with self._ctx.db.session() as s:
            return s.get_one(Item, item_id).state
