"""One unit of upload work, done safely on a worker thread: create a contribution, upload
one blob (tus) or a batch of small ones, finalize. Each task opens its own database
sessions and writes every change as it happens."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import RegistryRefused, RegistryUnavailable
from app.domain.states import JobState, State, TaskKind
from app.durable import gc_paused
from app.registry_client.api import BatchUnsupported
from app.registry_client.tus import BlobMismatch, ChecksumFailed, UploadHooks, UploadStopped
from app.services.history import record_event, transition
from app.services.uploads.batch_sql import claim, id_in, load_batch, mark_done, read_unchanged
from app.services.uploads.jobs import JobTable
from app.services.uploads.link import RegistryLink
from app.services.uploads.options import Task, disk_guard
from app.services.uploads.plans import Plans
from app.services.uploads.progress import Events, ProgressBook, QueueEvent
from app.services.uploads.remote import create_remote, finalize_remote
from app.services.uploads.runtime import Runtime
from app.store.models import FileEntry, Item, utcnow
from app.store.queue_models import UploadJob


class Workers:
    def __init__(
        self,
        rt: Runtime,
        link: RegistryLink,
        jobs: JobTable,
        plans: Plans,
        events: Events,
        book: ProgressBook,
    ) -> None:
        self._rt = rt
        self._link = link
        self._jobs = jobs
        self._plans = plans
        self._events = events
        self._book = book

    def run(self, task: Task) -> None:
        try:
            if task.kind is TaskKind.CREATE:
                self._create(task.job_ids[0])
            elif task.kind is TaskKind.FINALIZE:
                self._finalize(task.item_id)
            elif task.kind is TaskKind.BATCH:
                self._upload_batches(task.item_id, task.job_ids)
            else:
                self._upload_blob(task.job_ids[0])
        finally:
            self._rt.wake.set()

    def _create(self, job_id: int) -> None:
        ctx = self._rt.ctx
        with disk_guard(), ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            item_id, attempts = job.item_id, job.attempts + 1
            job.attempts = attempts
        try:
            with disk_guard():
                result = create_remote(ctx, self._rt.client, item_id)
        except RegistryUnavailable as exc:
            self._jobs.retry_later(job_id, exc, attempts)
            return
        except RegistryRefused as exc:
            self._events.emit(QueueEvent("contribution", item_id=item_id, message=str(exc)))
            return
        self._link.went_online()
        self._events.emit(QueueEvent("contribution", item_id=item_id, message=result.state.value))

    def _finalize(self, item_id: int) -> None:
        rt = self._rt
        try:
            with disk_guard():
                state = finalize_remote(rt.ctx, rt.client, item_id)
        except RegistryUnavailable as exc:
            rt.finalize_after[item_id] = time.monotonic() + rt.rng.uniform(0.5, 2.0)
            self._link.went_offline(exc)
            return
        except RegistryRefused as exc:
            # e.g. the contribution vanished: say so once and leave it for `sync`/the user.
            rt.finalize_after[item_id] = time.monotonic() + 3600.0
            with disk_guard(), rt.ctx.db.session() as s:
                record_event(s, s.get_one(Item, item_id), "finalize-refused", exc.message)
            self._events.emit(QueueEvent("contribution", item_id=item_id, message=str(exc)))
            return
        self._link.went_online()
        self._events.emit(QueueEvent("contribution", item_id=item_id, message=state.value))

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

    def _source(self, s: Session, job: UploadJob, item: Item) -> tuple[Path | None, str]:
        """A file carrying this blob that is unchanged since submit, or why there is none."""
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

    def _upload_blob(self, job_id: int) -> None:
        rt = self._rt
        # The start is serialised so two workers never both move the item queued → uploading.
        with rt.start_lock, disk_guard(), rt.ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            item = s.get_one(Item, job.item_id)
            if job.state != JobState.PENDING or item.registry_id is None:
                return
            path, why = self._source(s, job, item)
            if path is None:
                self._jobs.stop_contribution(s, item, job, why)
                stopped = why
            else:
                stopped = ""
                job.state, job.attempts = JobState.UPLOADING.value, job.attempts + 1
                job.updated_at = utcnow()
                if item.state == State.QUEUED.value:
                    transition(s, item, State.UPLOADING, "uploading", "")
            item_id, size, sha, url = job.item_id, job.size, job.sha256, job.upload_url
            registry_id, attempts, name = item.registry_id, job.attempts, job.paths[0]
            confirmed = job.bytes_confirmed
        if path is None:
            self._events.emit(
                QueueEvent("contribution", item_id=item_id, job_id=job_id, message=stopped)
            )
            return
        stop = threading.Event()
        if rt.stop.is_set():
            stop.set()
        rt.job_stops[job_id] = stop
        self._book.start(job_id, item_id, size, confirmed)
        self._events.emit(QueueEvent("job", item_id=item_id, job_id=job_id, message="uploading"))
        try:
            rt.tus.upload(
                path,
                size,
                {"sha256": sha, "contribution": registry_id, "filename": name.rsplit("/")[-1]},
                url=url,
                hooks=UploadHooks(
                    on_url=lambda u: self._jobs.save(job_id, upload_url=u, bytes_confirmed=0),
                    on_confirmed=lambda off: self._confirmed(job_id, item_id, off),
                    on_sent=lambda n: self._book.sent(job_id, n),
                ),
                stop=stop,
                sha256=sha,
            )
        except UploadStopped:
            with disk_guard(), rt.ctx.db.session() as s:
                job = s.get_one(UploadJob, job_id)
                if job.state == JobState.UPLOADING:
                    job.state, job.updated_at = JobState.PENDING.value, utcnow()
            return
        except RegistryUnavailable as exc:
            self._jobs.retry_later(job_id, exc, attempts)
            return
        except (RegistryRefused, BlobMismatch, ChecksumFailed, OSError) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            with disk_guard(), rt.ctx.db.session() as s:
                job = s.get_one(UploadJob, job_id)
                item = s.get_one(Item, item_id)
                if isinstance(exc, RegistryRefused):
                    job.state, job.last_error = JobState.FAILED.value, reason
                    job.updated_at = utcnow()
                else:
                    self._jobs.stop_contribution(s, item, job, f"{name}: {reason}")
            self._events.emit(QueueEvent("job", item_id=item_id, job_id=job_id, message=reason))
            return
        finally:
            rt.job_stops.pop(job_id, None)
            self._book.finish(job_id)
        with disk_guard(), rt.ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            job.state, job.bytes_confirmed, job.last_error = JobState.DONE.value, size, ""
            job.next_attempt_at, job.updated_at = None, utcnow()
        self._link.went_online()
        self._events.emit(QueueEvent("job", item_id=item_id, job_id=job_id, message="done"))

    def _upload_batches(self, item_id: int, job_ids: tuple[int, ...]) -> None:
        """A batch, then the contribution's next planned ones while all goes well."""
        try:
            while job_ids:
                with gc_paused():  # ~10,000 row objects and buffers per batch
                    self._upload_batch(job_ids)
                job_ids = self._plans.next_for_worker(item_id)
        finally:
            self._plans.release_worker()

    def _upload_batch(self, job_ids: tuple[int, ...]) -> None:
        """Many small blobs of one contribution in one request (POST /v1/uploads/batch).

        Each file is read and checked (size + mtime against the catalogue) before the jobs are
        claimed in ONE transaction (UPDATE … RETURNING), so a crash leaves them all pending or
        all uploading, and JobTable.recover makes uploading ones pending (the registry answers
        'present' for what it already stored: no duplicates). SQL in batch_sql.py."""
        rt = self._rt
        with disk_guard(), rt.ctx.db.session() as s:
            batch = load_batch(s, job_ids)
        if batch is None or batch.registry_id is None:
            return
        item_id, registry_id = batch.item_id, batch.registry_id
        blobs: list[tuple[str, int, Path | bytes]] = []
        job_of: dict[str, list[int]] = {}
        for job in batch.jobs:
            data, why = read_unchanged(batch.source_path, job)
            if data is None:
                with disk_guard(), rt.ctx.db.session() as s:
                    item = s.get_one(Item, item_id)
                    self._jobs.stop_contribution(s, item, s.get_one(UploadJob, job.id), why)
                self._events.emit(
                    QueueEvent("contribution", item_id=item_id, job_id=job.id, message=why)
                )
                return
            blobs.append((job.sha256, job.size, data))
            job_of.setdefault(job.sha256, []).append(job.id)
        if not rt.paced(sum(b[1] for b in blobs)):
            return  # stopping: the jobs are still pending
        with rt.start_lock, disk_guard(), rt.ctx.db.session() as s:
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
            result = rt.client.upload_batch(registry_id, blobs)
        except BatchUnsupported:
            rt.batch_ok = False
            self._jobs.set_states(
                [id_in(UploadJob.id, ids)], JobState.PENDING, (JobState.UPLOADING,)
            )
            return
        except RegistryUnavailable as exc:
            self._jobs.retry_many_later(ids, exc, attempts)
            return
        except (RegistryRefused, OSError) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            self._jobs.set_states(
                [id_in(UploadJob.id, ids)], JobState.FAILED, (JobState.UPLOADING,)
            )
            self._jobs.save_many(ids, last_error=reason)
            return
        done = [jid for sha in (*result.stored, *result.present) for jid in job_of.get(sha, [])]
        with disk_guard(), rt.ctx.db.session() as s:
            mark_done(s, done)
            if result.rejected:
                item = s.get_one(Item, item_id)
                sha, why = next(iter(result.rejected.items()))
                bad = s.get_one(UploadJob, job_of[sha][0])
                self._jobs.stop_contribution(s, item, bad, f"{bad.paths[0]}: rejected ({why})")
                for row in s.scalars(select(UploadJob).where(id_in(UploadJob.id, ids))):
                    if row.state == JobState.UPLOADING:
                        row.state = JobState.PAUSED.value
        self._link.went_online()
        self._events.emit_many(
            [QueueEvent("job", item_id=item_id, job_id=jid, message="done") for jid in done]
            if self._events
            else []
        )
        self._events.emit(QueueEvent("progress", item_id=item_id))

    def _confirmed(self, job_id: int, item_id: int, offset: int) -> None:
        self._jobs.save(job_id, bytes_confirmed=offset)
        self._book.confirmed(job_id, offset)
        self._link.went_online()
        self._events.emit(QueueEvent("progress", item_id=item_id, job_id=job_id))
