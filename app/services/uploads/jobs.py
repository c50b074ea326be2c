"""The upload job rows: every state change of a job is written here, in one statement where
a worker might write the same rows at the same time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain.states import JobKind, JobState
from app.registry_client.http import Unreachable
from app.services.history import record_event
from app.services.uploads.batch_sql import id_in
from app.services.uploads.link import RegistryLink
from app.services.uploads.options import disk_guard
from app.services.uploads.plans import Plans
from app.services.uploads.progress import Events, QueueEvent
from app.services.uploads.runtime import Runtime
from app.store.models import Item, utcnow
from app.store.queue_models import UploadJob

FINISHED_ITEM_STATES = ("accepted", "rejected", "draft")


class JobTable:
    def __init__(self, rt: Runtime, link: RegistryLink, plans: Plans, events: Events) -> None:
        self._rt = rt
        self._link = link
        self._plans = plans
        self._events = events

    def set_states(
        self, where: list[object], to: JobState, from_states: tuple[JobState, ...]
    ) -> int:
        """Move the matching jobs that are in `from_states` to `to`, in ONE statement: a
        select-then-write could overwrite a state a worker wrote in between (a batch marked
        done while it was being paused would have been sent again)."""
        values: dict[str, object] = {"state": to.value, "updated_at": utcnow()}
        if to is JobState.PENDING:
            values["next_attempt_at"] = None
        with disk_guard(), self._rt.ctx.db.session() as s:
            moved = s.connection().execute(
                update(UploadJob)
                .where(*where, UploadJob.state.in_([f.value for f in from_states]))  # type: ignore[arg-type]
                .values(**values)
                .returning(UploadJob.id)
            )
            ids = [int(jid) for (jid,) in moved.all()]
        if to in (JobState.PAUSED, JobState.CANCELLED):
            for jid in ids:
                stop = self._rt.job_stops.get(jid)
                if stop is not None:
                    stop.set()
        self._plans.drop()  # a plan names jobs that may have changed: re-plan from the rows
        for jid in ids:
            self._events.emit(QueueEvent("job", job_id=jid, message=to.value))
        self._rt.wake.set()
        return len(ids)

    def save(self, job_id: int, **values: object) -> None:
        with disk_guard(), self._rt.ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(UploadJob.id == job_id)
                .values(**values, updated_at=utcnow())
            )

    def save_many(self, job_ids: list[int], **values: object) -> None:
        with disk_guard(), self._rt.ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(UploadJob.id.in_(job_ids))
                .values(**values, updated_at=utcnow())
            )

    def recover(self) -> None:
        """Jobs left 'uploading' by a crash are pending again (they resume by HEAD)."""
        with disk_guard(), self._rt.ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(UploadJob.state == JobState.UPLOADING.value)
                .values(state=JobState.PENDING.value, updated_at=utcnow())
            )

    def _delay(self, exc: BaseException, attempts: int) -> tuple[float, float | None]:
        retry_after = exc.retry_after if isinstance(exc, Unreachable) else None
        delay = (
            retry_after
            if retry_after is not None
            else self._rt.rng.uniform(0, min(30.0, 0.5 * 2 ** min(attempts, 8)))
        )
        return delay, retry_after

    def retry_later(self, job_id: int, exc: BaseException, attempts: int) -> None:
        """The registry could not be reached (or asked us to wait): try the job again later;
        without a Retry-After the registry counts as offline."""
        delay, retry_after = self._delay(exc, attempts)
        with disk_guard(), self._rt.ctx.db.session() as s:
            job = s.get_one(UploadJob, job_id)
            if job.state == JobState.UPLOADING or job.kind == JobKind.CREATE:
                if job.state in (JobState.UPLOADING, JobState.PENDING):
                    job.state = JobState.PENDING.value
            job.last_error = str(exc)
            job.next_attempt_at = utcnow() + timedelta(seconds=delay)
            job.updated_at = utcnow()
        if retry_after is None:
            self._link.went_offline(exc)

    def retry_many_later(self, job_ids: list[int], exc: BaseException, attempts: int) -> None:
        """`retry_later` for a whole batch of blob jobs, in one statement."""
        delay, retry_after = self._delay(exc, attempts)
        now = utcnow()
        with disk_guard(), self._rt.ctx.db.session() as s:
            s.execute(
                update(UploadJob)
                .where(id_in(UploadJob.id, job_ids), UploadJob.state == JobState.UPLOADING.value)
                .values(state=JobState.PENDING.value)
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
            self._link.went_offline(exc)

    def stop_contribution(self, s: Session, item: Item, job: UploadJob, reason: str) -> None:
        """A file of the contribution cannot be sent: fail its job, pause the others, and
        tell the user how to go on."""
        job.state, job.last_error, job.updated_at = JobState.FAILED.value, reason, utcnow()
        s.execute(
            update(UploadJob)
            .where(
                UploadJob.item_id == item.id,
                UploadJob.id != job.id,
                UploadJob.state.in_((JobState.PENDING.value, JobState.UPLOADING.value)),
            )
            .values(
                state=JobState.PAUSED.value, last_error=f"stopped: {reason}", updated_at=utcnow()
            )
        )
        self._rt.stop_uploads(keep=job.id)
        record_event(s, item, "upload-stopped", f"{reason}; restore it and retry, or re-add")

    def clear_finished(self) -> int:
        """Forget the job rows of contributions the registry has decided on."""
        with disk_guard(), self._rt.ctx.db.session() as s:
            done = select(Item.id).where(Item.state.in_(FINISHED_ITEM_STATES))
            rows = s.scalars(select(UploadJob).where(UploadJob.item_id.in_(done))).all()
            for r in rows:
                s.delete(r)
            return len(rows)
