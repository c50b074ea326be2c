"""The upload queue's workers: registry status, and the tasks that talk to the registry.

UploadQueue (app.services.uploads) schedules; these methods run on its worker threads. Split
out so each module stays about one thing: this one is "do one unit of upload work safely".
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.domain.errors import KnownError, RegistryRefused, RegistryUnavailable
from app.domain.gcpause import gc_paused
from app.domain.states import State
from app.domain.units import KB
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
from app.services.identity import PassphraseFn
from app.services.signing import unlock_signer
from app.services.submit import create_remote, finalize_remote
from app.services.upload_batch import claim, id_in, load_batch, mark_done, read_unchanged
from app.services.upload_state import ProgressBook, QueueEvent, RegistryStatus
from app.settings import UPLOAD_BANDWIDTH_KBPS, UPLOAD_CHUNK_MB, UPLOAD_CONCURRENCY
from app.store.models import FileEntry, Item, utcnow
from app.store.queue_models import JOB_CREATE, UploadJob

log = logging.getLogger(__name__)
ACTIVE_ITEM_STATES = (State.QUEUED.value, State.UPLOADING.value)
Listener = Callable[[QueueEvent], None]


SMALL_BLOB = 256 * 1024  # blobs up to this size travel in batches, not one tus upload each
BATCH_COUNT = 1000


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
    # Small-blob batch payload (0 = tus for everything). 24 MiB: each batch costs the registry
    # one syncfs and a few queries, so fewer, larger batches are faster (2 GB mixed bench: the
    # batches' share of the upload fell ~20% from 8 MiB); the index fits in the 32 MiB limit.
    batch_bytes: int = 24 * 1024 * 1024
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
                else bandwidth_from_settings(ctx)
            ),
        )


MAX_CONCURRENCY = 8  # the most parallel uploads the settings offer


def bandwidth_from_settings(ctx: ServiceContext) -> int:
    """The user's bandwidth limit in bytes per second (KB/s × 1000, as sizes are shown)."""
    return max(0, ctx.settings.get(UPLOAD_BANDWIDTH_KBPS)) * KB


def make_client(
    ctx: ServiceContext,
    *,
    passphrase: str | PassphraseFn | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    pool_size: int = 8,
) -> RegistryClient:
    """A client for ctx.registry_url that loads the identity key when first needed (once per
    session: the context's SignerCache is shared with signing and submit) and shares its
    session token with the context's other clients (one login for submit + upload)."""
    lock = threading.Lock()
    cached: list[Ed25519PrivateKey] = []

    def signer() -> Ed25519PrivateKey:
        with lock:
            if not cached:
                cached.append(unlock_signer(ctx, passphrase))
            return cached[0]

    return RegistryClient(
        ctx.registry_url,
        signer,
        timeouts=timeouts,
        retry=retry,
        pool_size=pool_size,
        tokens=ctx.tokens,
    )


class UploadWorkers:
    """Shared state and the worker-thread tasks of UploadQueue (one data dir, one registry)."""

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
            pool_size=max(self.options.concurrency, MAX_CONCURRENCY) + 2,
        )
        # Always present (0 = unlimited) so a limit set while uploads run applies at once.
        self.limiter = BandwidthLimiter(self.options.bandwidth_bytes_per_s)
        self.tus = TusClient(
            self.client.http, chunk_size=self.options.chunk_size, limiter=self.limiter
        )
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
        # Small-blob batches planned per contribution, and the planned batch each worker
        # thread has in hand (see UploadQueue._plan_batches); both under self._lock.
        self._plans: dict[int, deque[tuple[int, ...]]] = {}
        self._in_hand: dict[int, tuple[int, ...]] = {}

    def set_limits(
        self, *, bandwidth_bytes_per_s: int | None = None, concurrency: int | None = None
    ) -> None:
        """Apply a new bandwidth limit (0 = unlimited) or parallelism to running uploads:
        the next block read obeys the rate, the scheduler's next round the parallelism."""
        if bandwidth_bytes_per_s is not None:
            self.limiter.set_rate(max(0, bandwidth_bytes_per_s))
            self.options = replace(self.options, bandwidth_bytes_per_s=bandwidth_bytes_per_s)
        if concurrency is not None:
            n = min(MAX_CONCURRENCY, max(1, concurrency))
            self.options = replace(self.options, concurrency=n)
        self._wake.set()

    def _paced(self, nbytes: int) -> bool:
        """Wait until the bandwidth limit allows sending `nbytes` (a batch body), a block at
        a time so a stop is seen; False when the queue is stopping."""
        while nbytes > 0 and not self.limiter.unlimited:
            if self._stop.is_set():
                return False
            n = min(nbytes, self.limiter.block_size())
            self.limiter.acquire(n)
            nbytes -= n
        return not self._stop.is_set()

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def _emit(self, event: QueueEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(event)
            except Exception:  # a broken listener must not break the upload
                log.exception("queue listener failed")

    def _emit_many(self, events: list[QueueEvent]) -> None:
        for event in events:
            self._emit(event)

    def _set_states(self, where: list[object], to: str, from_states: tuple[str, ...]) -> int:
        """Move the matching jobs that are in `from_states` to `to`, in ONE statement: a
        select-then-write could overwrite a state a worker wrote in between (a batch marked
        done while it was being paused would have been sent again)."""
        values: dict[str, object] = {"state": to, "updated_at": utcnow()}
        if to == "pending":
            values["next_attempt_at"] = None
        with disk_guard(), self._ctx.db.session() as s:
            moved = s.connection().execute(
                update(UploadJob)
                .where(*where, UploadJob.state.in_(from_states))  # type: ignore[arg-type]
                .values(**values)
                .returning(UploadJob.id)
            )
            ids = [int(jid) for (jid,) in moved.all()]
        if to in ("paused", "cancelled"):
            for jid in ids:
                stop = self._job_stops.get(jid)
                if stop is not None:
                    stop.set()
        self._drop_plans()  # a plan names jobs that may have changed: re-plan from the rows
        for jid in ids:
            self._emit(QueueEvent("job", job_id=jid, message=to))
        self._wake.set()
        return len(ids)

    # -- planned small-blob batches ---------------------------------------------------------

    def _take_planned(self, limit: int) -> list[Task]:
        """Up to `limit` planned batches, as tasks (lowest contribution id first)."""
        out: list[Task] = []
        with self._lock:
            for item_id in sorted(self._plans):
                while len(out) < limit and (ids := self._pop_plan(item_id)):
                    out.append(Task("batch", ids, item_id))
        return out

    def _pop_plan(self, item_id: int) -> tuple[int, ...]:
        """The next planned batch of a contribution, or (); caller holds self._lock."""
        plan = self._plans.get(item_id)
        if not plan:
            return ()
        ids = plan.popleft()
        if not plan:
            del self._plans[item_id]
        return ids

    def _planned_ids(self) -> set[int]:
        """Jobs of planned batches and of those a worker took from a plan (not claimed yet
        maybe): the scheduler must not plan them again."""
        with self._lock:
            ids = {jid for plan in self._plans.values() for batch in plan for jid in batch}
            ids.update(jid for batch in self._in_hand.values() for jid in batch)
        return ids

    def _drop_plans(self) -> None:
        with self._lock:
            self._plans.clear()

    def _next_planned(self, item_id: int) -> tuple[int, ...]:
        """The next planned batch of the contribution for this worker, or () when there is
        none or the worker should go back to the scheduler (stopping, registry offline)."""
        if self._stop.is_set() or self._fatal is not None:
            return ()
        if self._status is not RegistryStatus.ONLINE:
            return ()
        with self._lock:
            ids = self._pop_plan(item_id)
            if ids:
                self._in_hand[threading.get_ident()] = ids
        return ids

    def _upload_batches(self, item_id: int, job_ids: tuple[int, ...]) -> None:
        """A batch, then the contribution's next planned ones while all goes well."""
        me = threading.get_ident()
        try:
            while job_ids:
                with gc_paused():  # ~10,000 row objects and buffers per batch
                    self._upload_batch(job_ids)
                job_ids = self._next_planned(item_id)
        finally:
            with self._lock:
                self._in_hand.pop(me, None)

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

    def _jobs_retry_later(self, job_ids: list[int], exc: BaseException, attempts: int) -> None:
        """`_job_retry_later` for a whole batch of blob jobs, in one statement."""
        retry_after = exc.retry_after if isinstance(exc, Unreachable) else None
        delay = (
            retry_after
            if retry_after is not None
            else self._rng.uniform(0, min(30.0, 0.5 * 2 ** min(attempts, 8)))
        )
        now = utcnow()
        with disk_guard(), self._ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(id_in(UploadJob.id, job_ids), UploadJob.state == "uploading")
                .values(state="pending")
            )
            s.execute(
                update(UploadJob)
                .where(id_in(UploadJob.id, job_ids))
                .values(
                    last_error=str(exc),
                    next_attempt_at=now + timedelta(seconds=delay),
                    updated_at=now,
                )
            )
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
                sha256=sha,
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
        """Many small blobs of one contribution in one request (POST /v1/uploads/batch).

        Each file is read and checked (size + mtime against the catalogue) before the jobs are
        claimed in ONE transaction (UPDATE … RETURNING), so a crash leaves them all pending or
        all uploading, and `_recover` makes uploading ones pending (the registry answers
        'present' for what it already stored: no duplicates). SQL in upload_batch.py."""
        with disk_guard(), self._ctx.db.session() as s:
            batch = load_batch(s, job_ids)
        if batch is None or batch.registry_id is None:
            return
        item_id, registry_id = batch.item_id, batch.registry_id
        blobs: list[tuple[str, int, Path | bytes]] = []
        job_of: dict[str, list[int]] = {}
        for job in batch.jobs:
            data, why = read_unchanged(batch.source_path, job)
            if data is None:
                with disk_guard(), self._ctx.db.session() as s:
                    item = s.get_one(Item, item_id)
                    self._stop_contribution(s, item, s.get_one(UploadJob, job.id), why)
                self._emit(QueueEvent("contribution", item_id=item_id, job_id=job.id, message=why))
                return
            blobs.append((job.sha256, job.size, data))
            job_of.setdefault(job.sha256, []).append(job.id)
        if not self._paced(sum(b[1] for b in blobs)):
            return  # stopping: the jobs are still pending
        with self._start_lock, disk_guard(), self._ctx.db.session() as s:
            claimed = claim(s, (j.id for j in batch.jobs))
            if claimed:
                item = s.get_one(Item, item_id)
                if item.state == State.QUEUED.value:
                    transition(s, item, State.UPLOADING, "uploading", "")
        if not claimed:
            return
        if len(claimed) < len(batch.jobs):  # paused or cancelled meanwhile: send the rest
            job_of = {sha: [j for j in ids if j in claimed] for sha, ids in job_of.items()}
            job_of = {sha: ids for sha, ids in job_of.items() if ids}
            blobs = [b for b in blobs if b[0] in job_of]
        attempts = batch.jobs[0].attempts + 1
        ids = [jid for group in job_of.values() for jid in group]
        try:
            result = self.client.upload_batch(registry_id, blobs)
        except BatchUnsupported:
            self._batch_ok = False
            self._set_states([id_in(UploadJob.id, ids)], "pending", ("uploading",))
            return
        except RegistryUnavailable as exc:
            self._jobs_retry_later(ids, exc, attempts)
            return
        except (RegistryRefused, OSError) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            self._set_states([id_in(UploadJob.id, ids)], "failed", ("uploading",))
            self._save_many(ids, last_error=reason)
            return
        done = [jid for sha in (*result.stored, *result.present) for jid in job_of.get(sha, [])]
        with disk_guard(), self._ctx.db.session() as s:
            mark_done(s, done)
            if result.rejected:
                item = s.get_one(Item, item_id)
                sha, why = next(iter(result.rejected.items()))
                bad = s.get_one(UploadJob, job_of[sha][0])
                self._stop_contribution(s, item, bad, f"{bad.paths[0]}: rejected ({why})")
                for row in s.scalars(select(UploadJob).where(id_in(UploadJob.id, ids))):
                    if row.state == "uploading":
                        row.state = "paused"
        self._online()
        self._emit_many(
            [QueueEvent("job", item_id=item_id, job_id=jid, message="done") for jid in done]
            if self._listeners
            else []
        )
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


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, KnownError) else str(exc)
