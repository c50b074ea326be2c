"""What the upload queue can start now: creates, blob uploads (small ones batched) and
finalizes, read from the job rows in a few queries however many jobs there are."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, exists, select, true
from sqlalchemy.orm import Session, aliased

from app.domain.states import JobKind, JobState, TaskKind
from app.durable import gc_paused
from app.services.uploads import options as limits
from app.services.uploads.batch_sql import id_in
from app.services.uploads.options import ACTIVE_ITEM_STATES, Task
from app.services.uploads.plans import Plans
from app.services.uploads.runtime import Runtime
from app.store.models import Item
from app.store.queue_models import UploadJob


class Scheduler:
    def __init__(self, rt: Runtime, plans: Plans) -> None:
        self._rt = rt
        self._plans = plans

    def ours(self) -> ColumnElement[bool]:
        """Items submitted to this queue's registry."""
        return Item.registry_url == self._rt.client.base_url

    def ready(self, s: Session, busy: set[int], busy_items: set[int], limit: int) -> list[Task]:
        """What can start now: creates, blob uploads (small ones batched), finalizes."""
        now = datetime.now(UTC)
        due = (UploadJob.next_attempt_at.is_(None)) | (UploadJob.next_attempt_at <= now)
        out: list[Task] = []
        base = (
            select(UploadJob.id, UploadJob.kind, UploadJob.item_id, UploadJob.size)
            .join(Item, Item.id == UploadJob.item_id)
            .where(
                UploadJob.state == JobState.PENDING.value,
                due,
                Item.state.in_(ACTIVE_ITEM_STATES),
            )
            .where(self.ours())
            # Creates first; then per contribution the largest blobs first (longest job first
            # keeps every worker busy to the end instead of one 512 MiB upload finishing
            # alone after everything else), small-blob batches filling in at the end.
            .order_by(
                UploadJob.kind != JobKind.CREATE.value,
                UploadJob.item_id,
                UploadJob.size.desc(),
                UploadJob.id,
            )
        )
        taken: set[int] = set(busy)  # in flight, maybe not claimed yet, or planned here
        batching = self._rt.batch_ok and self._rt.options.batch_bytes > 0
        conn = s.connection()  # Core rows: a batch is thousands of them
        # Batches planned earlier and left over (their chain stopped, e.g. offline) go first.
        out.extend(self._plans.take(limit - len(out)))
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
                if kind == JobKind.CREATE:
                    if item_id not in busy_items:
                        out.append(Task(TaskKind.CREATE, (jid,), item_id))
                        busy_items.add(item_id)
                elif batching and size <= limits.SMALL_BLOB:
                    # With nothing in flight the first batch is half size, so the workers
                    # run out of phase: one reads files while the other waits for the
                    # registry, instead of both reading, then both waiting.
                    first = limits.BATCH_COUNT // 2 if not busy and not out else limits.BATCH_COUNT
                    planned = self._plan_batches(conn, item_id, taken - {jid}, due, first)
                    for ids in planned:
                        taken.update(ids)
                    out.extend(self._plans.take(limit - len(out)))
                else:
                    out.append(Task(TaskKind.BLOB, (jid,), item_id))
        other = aliased(UploadJob)
        unfinished = exists().where(other.item_id == Item.id, other.state != JobState.DONE.value)
        mono = time.monotonic()
        for (item_id,) in s.execute(
            select(Item.id).where(
                Item.state.in_(ACTIVE_ITEM_STATES),
                Item.registry_id.is_not(None),
                ~unfinished,
                self.ours(),
            )
        ):
            if item_id not in busy_items and self._rt.finalize_after.get(item_id, 0.0) <= mono:
                out.append(Task(TaskKind.FINALIZE, (), item_id))
                busy_items.add(item_id)
        return out

    def _plan_batches(
        self, conn: Connection, item_id: int, taken: set[int], due: Any, first: int
    ) -> list[tuple[int, ...]]:
        """Every small pending blob of the contribution, cut into batches (the first of
        `first` blobs, then BATCH_COUNT, each within batch_bytes), planned in ONE query and
        kept in Plans."""
        batch_bytes = self._rt.options.batch_bytes
        with gc_paused():  # 10,000s of row tuples
            rows = conn.execute(
                select(UploadJob.id, UploadJob.size)
                .where(
                    UploadJob.item_id == item_id,
                    UploadJob.kind == JobKind.BLOB.value,
                    UploadJob.state == JobState.PENDING.value,
                    UploadJob.size <= limits.SMALL_BLOB,
                    ~id_in(UploadJob.id, taken) if taken else true(),
                    due,
                )
                .order_by(UploadJob.id)
            ).all()
            batches: list[tuple[int, ...]] = []
            ids: list[int] = []
            total, count = 0, first
            for jid, size in rows:
                if ids and (len(ids) >= count or total + size > batch_bytes):
                    batches.append(tuple(ids))
                    ids, total, count = [], 0, limits.BATCH_COUNT
                ids.append(jid)
                total += size
            if ids:
                batches.append(tuple(ids))
        self._plans.add(item_id, batches)
        return batches

    def has_work(self, s: Session) -> tuple[bool, datetime | None]:
        """(anything left to do now or later, earliest next_attempt_at)."""
        pending = s.execute(
            select(UploadJob.next_attempt_at)
            .join(Item, Item.id == UploadJob.item_id)
            .where(UploadJob.state.in_((JobState.PENDING.value, JobState.UPLOADING.value)))
            .where(Item.state.in_(ACTIVE_ITEM_STATES), self.ours())
        ).all()
        times = [t for (t,) in pending if t is not None]
        earliest = min(times) if times else None
        return bool(pending), earliest
