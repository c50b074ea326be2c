"""The database and file side of small-blob batches (up to BATCH_COUNT jobs per request).

Why a module of its own and why plain SQL: a batch is thousands of jobs, and building,
flushing and committing that many ORM objects — or binding thousands of `IN (?, ?, …)`
parameters — cost the client more CPU than reading the files. Here every statement takes
the job ids as ONE JSON parameter (SQLite's json_each), rows are plain tuples, and each file
is checked and read on one open descriptor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.orm import Session

from app.domain.states import JobState
from app.registry_client.api import read_if_unchanged
from app.store.models import Item, utcnow
from app.store.queue_models import UploadJob


def id_in(column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN (ids)` with one bound parameter, whatever the number of ids."""
    each = func.json_each(json.dumps(list(ids))).table_valued("value")
    result: ColumnElement[bool] = column.in_(select(each.c.value))
    return result


@dataclass(slots=True)
class BatchJob:
    """One pending blob job of a batch with every file that carries it, as catalogued:
    (relative path, size, mtime_ns); size/mtime are None when the catalogue lost the file."""

    id: int
    sha256: str
    size: int
    attempts: int
    files: list[tuple[str, int | None, int | None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Batch:
    item_id: int
    source_path: str
    registry_id: str | None
    jobs: list[BatchJob]


_LOAD = text(
    """
    SELECT j.id, j.item_id, j.sha256, j.size, j.attempts, p.value, f.size, f.mtime_ns
    FROM upload_jobs AS j
    JOIN json_each(j.paths) AS p
    LEFT JOIN files AS f ON f.item_id = j.item_id AND f.path = p.value
    WHERE j.id IN (SELECT value FROM json_each(:ids)) AND j.state = 'pending'
    ORDER BY j.id, p.key
    """
)


def load_batch(s: Session, job_ids: Iterable[int]) -> Batch | None:
    """The still-pending jobs among `job_ids` and their files (one query, one item)."""
    jobs: dict[int, BatchJob] = {}
    item_id: int | None = None
    # .all(): one fetchall; iterating the result would fetch (and process) row by row.
    for jid, iid, sha, size, attempts, path, fsize, mtime in (
        s.connection().execute(_LOAD, {"ids": json.dumps(list(job_ids))}).all()
    ):
        job = jobs.get(jid)
        if job is None:
            job = jobs[jid] = BatchJob(jid, sha, size, attempts)
            item_id = iid if item_id is None else item_id
        job.files.append((str(path), fsize, mtime))
    if item_id is None:
        return None
    source, registry_id = s.execute(
        select(Item.source_path, Item.registry_id).where(Item.id == item_id)
    ).one()
    return Batch(item_id, source, registry_id, [j for j in jobs.values()])


def read_unchanged(root: str, job: BatchJob) -> tuple[bytes | None, str]:
    """The bytes of the first file carrying the blob that is unchanged since submit (size and
    mtime as catalogued), or why there is none (same words as for a single blob)."""
    why = ""
    for rel, size, mtime in job.files:
        try:
            data = (
                read_if_unchanged(os.path.join(root, rel), size, mtime)
                if size == job.size and mtime is not None
                else None
            )
        except OSError:
            why = why or f"{rel} is missing (it was moved or deleted after submit)"
            continue
        if data is not None:
            return data, ""
        why = why or f"{rel} was modified after submit"
    return None, why


def claim(s: Session, job_ids: Iterable[int]) -> set[int]:
    """pending → uploading for the given jobs, in the caller's transaction; the ids it moved
    (a job paused or cancelled meanwhile is not taken)."""
    stmt = (
        update(UploadJob)
        .where(id_in(UploadJob.id, job_ids), UploadJob.state == JobState.PENDING.value)
        .values(
            state=JobState.UPLOADING.value, attempts=UploadJob.attempts + 1, updated_at=utcnow()
        )
        .returning(UploadJob.id)
    )
    return {int(jid) for (jid,) in s.connection().execute(stmt).all()}


def mark_done(s: Session, job_ids: Iterable[int]) -> None:
    """The registry holds these blobs (stored or already present)."""
    s.connection().execute(
        update(UploadJob)
        .where(id_in(UploadJob.id, job_ids))
        .values(
            state=JobState.DONE.value,
            bytes_confirmed=UploadJob.size,
            last_error="",
            next_attempt_at=None,
            updated_at=utcnow(),
        )
    )
