"""The registry calls of a contribution's upload: create it, finalize it, record its status.

`submit` (for the first try) and the upload queue (for every later one) make these calls;
each writes its result and its lifecycle transition in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, distinct, func, insert, literal, select, update
from sqlalchemy.orm import Session

from app.domain.errors import (
    BadInputError,
    NotFoundError,
    RegistryRefused,
    UsageError,
)
from app.domain.states import JobKind, JobState, State
from app.registry_client.api import ContributionStatus, Reason, RegistryClient
from app.registry_client.http import ApiRefused
from app.services.context import ServiceContext
from app.services.datanets import declared_parts
from app.services.history import record_event, transition
from app.services.possession import prove_held
from app.signing import dsse
from app.signing.statement import parse_statement
from app.store.latest import latest_envelope, latest_manifest
from app.store.models import FileEntry, Item, utcnow
from app.store.queue_models import UploadJob


@dataclass(frozen=True, slots=True)
class SubmitResult:
    item_id: int
    state: State
    registry_id: str | None
    blobs_to_upload: int
    bytes_to_upload: int
    offline: bool  # the registry could not be reached: it goes out when it can
    message: str


def _metadata(envelope: dict[str, Any], report: dict[str, Any] | None = None) -> dict[str, Any]:
    """The create metadata, taken from the signed statement so they cannot disagree, and the
    parts of the item's format report (what the datanet's content rules judge)."""
    pred = parse_statement(dsse.Envelope.from_dict(envelope).payload).predicate
    return {
        "datanet": pred.datanet,
        "title": pred.title,
        "kind": pred.kind,
        "parent": pred.parent,
        "license": pred.license or None,
        "parts": declared_parts(report or {}),
    }


def _reasons_json(reasons: tuple[Reason, ...]) -> list[dict[str, Any]]:
    return [{"code": r.code, "message": r.message, "path": r.path} for r in reasons]


def _reasons_text(reasons: tuple[Reason, ...]) -> str:
    return "; ".join(r.text() for r in reasons) or "no reason given"


def create_remote(ctx: ServiceContext, client: RegistryClient, item_id: int) -> SubmitResult:
    """Create the contribution at the registry and enqueue one job per missing blob.

    Idempotent: the registry returns the same contribution for the same envelope, and the jobs
    are (re)built from its answer in the same transaction that marks the create job done.
    Larger missing blobs whose bytes the registry already stores are proved held instead of
    queued (app/services/possession.py).
    Raises RegistryUnavailable (keep the job, try later) or RegistryRefused (job failed, item
    rejected with the registry's reason)."""
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        if item is None:
            raise NotFoundError(f"there is no item #{item_id} in the catalogue")
        env = latest_envelope(s, item.id)
        if env is None:
            raise UsageError(f"item #{item_id} is not signed")
        rec = latest_manifest(s, item_id)
        if rec is None:
            raise BadInputError(f"item #{item_id} has no manifest; add it again")
        envelope, manifest = env.envelope, rec.canonical
        report = dict(item.report or {})
    try:
        created = client.create_contribution(envelope, manifest, _metadata(envelope, report))
    except RegistryRefused as exc:
        with ctx.db.session() as s:
            item = s.get_one(Item, item_id)
            s.execute(
                update(UploadJob)
                .where(UploadJob.item_id == item_id, UploadJob.kind == JobKind.CREATE)
                .values(state=JobState.FAILED, last_error=exc.message, updated_at=utcnow())
            )
            item.rejection_reasons = [{"code": getattr(exc, "code", ""), "message": exc.message}]
            transition(s, item, State.REJECTED, "refused", exc.message)
        raise
    to_send: Sequence[str] = created.missing_blobs
    proven: set[str] = set()
    if created.state == "submitted" and to_send:
        # Bytes another key already stored: prove we hold them instead of sending them.
        proven = prove_held(ctx, client, item_id, created.id, to_send)
        to_send = [sha for sha in to_send if sha not in proven]
    with ctx.db.session() as s:
        item = s.get_one(Item, item_id)
        item.registry_id = created.id
        s.execute(delete(UploadJob).where(UploadJob.item_id == item_id))
        missing, total = _enqueue_missing(s, item_id, to_send)
        blobs = s.scalar(
            select(func.count(distinct(FileEntry.sha256))).where(FileEntry.item_id == item_id)
        )
        record_event(
            s,
            item,
            "created",
            f"registry id {created.id}; {missing} blob(s) to upload, "
            f"{(blobs or 0) - missing} already there"
            + (f" ({len(proven)} proved held, not sent)" if proven else ""),
        )
        if created.state == "rejected":
            item.rejection_reasons = _reasons_json(created.reasons)
            s.execute(delete(UploadJob).where(UploadJob.item_id == item_id))
            transition(s, item, State.REJECTED, "rejected", _reasons_text(created.reasons))
        elif created.state == "accepted":
            transition(s, item, State.SUBMITTED, "submitted", "already at the registry")
            transition(s, item, State.ACCEPTED, "accepted", "")
        return SubmitResult(
            item_id, State(item.state), created.id, missing, total, False, "created"
        )


def _enqueue_missing(s: Session, item_id: int, missing: Sequence[str]) -> tuple[int, int]:
    """One blob job per missing sha256 the item has, listing every path that carries it:
    (jobs, bytes). One INSERT … SELECT inside SQLite (json_each/json_group_array), because
    a 10,000-file contribution is 10,000 jobs and building them row by row in Python cost
    more than the rest of the create."""
    if not missing:
        return 0, 0
    now = utcnow()
    wanted = func.json_each(json.dumps(list(dict.fromkeys(missing)))).table_valued("value")
    files = (
        select(FileEntry.path, FileEntry.size, FileEntry.sha256)
        .where(FileEntry.item_id == item_id, FileEntry.sha256.in_(select(wanted.c.value)))
        .order_by(FileEntry.id)
        .subquery()
    )
    stamp = UploadJob.created_at.type
    s.execute(
        insert(UploadJob).from_select(
            [
                "item_id", "kind", "sha256", "paths", "size", "state", "attempts",
                "last_error", "bytes_confirmed", "created_at", "updated_at",
            ],
            select(
                literal(item_id), literal(JobKind.BLOB.value), files.c.sha256,
                func.json_group_array(files.c.path), func.min(files.c.size),
                literal(JobState.PENDING.value), literal(0), literal(""), literal(0),
                literal(now, stamp), literal(now, stamp),
            ).group_by(files.c.sha256),
        )
    )  # fmt: skip
    jobs, size = s.execute(
        select(func.count(), func.coalesce(func.sum(UploadJob.size), 0)).where(
            UploadJob.item_id == item_id, UploadJob.kind == JobKind.BLOB
        )
    ).one()
    return int(jobs), int(size)


def apply_status(ctx: ServiceContext, item_id: int, status: ContributionStatus) -> State:
    """Record what the registry says about a contribution (finalize answer or sync)."""
    with ctx.db.session() as s:
        item = s.get_one(Item, item_id)
        state = State(item.state)
        if status.state not in ("accepted", "rejected", "submitted", "pending-review"):
            return state
        if state in (State.QUEUED, State.UPLOADING):
            transition(s, item, State.SUBMITTED, "submitted", "all blobs uploaded")
        if State(item.state) is State.SUBMITTED and status.state == "pending-review":
            transition(
                s, item, State.PENDING_REVIEW, "pending-review", "the datanet's owner reviews it"
            )
        if State(item.state) in (State.SUBMITTED, State.PENDING_REVIEW):
            note = status.extra.get("reviewNote")
            reviewed = status.extra.get("reviewedAt") is not None
            if reviewed and isinstance(note, str):
                item.review_note = note[:2000]
            by_owner = "the owner" + (f": {note[:2000]}" if isinstance(note, str) and note else "")
            if status.state == "accepted":
                transition(s, item, State.ACCEPTED, "accepted", by_owner if reviewed else "")
            elif status.state == "rejected":
                item.rejection_reasons = _reasons_json(status.reasons)
                transition(s, item, State.REJECTED, "rejected", _reasons_text(status.reasons))
        return State(item.state)


def finalize_remote(ctx: ServiceContext, client: RegistryClient, item_id: int) -> State:
    """Finalize (idempotent at the registry, so a retry after a lost answer is safe).

    A 409 'blobs_missing' re-enqueues exactly the blobs the registry still lacks."""
    with ctx.db.session() as s:
        registry_id = s.get_one(Item, item_id).registry_id
    if registry_id is None:
        raise UsageError(f"item #{item_id} has no registry id yet")
    try:
        status = client.finalize(registry_id)
    except ApiRefused as exc:
        if exc.code != "blobs_missing":
            raise
        missing = (
            (exc.details or {}).get("missingBlobs", []) if isinstance(exc.details, dict) else []
        )
        requeue_blobs(ctx, item_id, [str(m) for m in missing])
        return State.UPLOADING
    return apply_status(ctx, item_id, status)


def requeue_blobs(ctx: ServiceContext, item_id: int, shas: list[str]) -> None:
    with ctx.db.session() as s:
        jobs = s.scalars(
            select(UploadJob).where(UploadJob.item_id == item_id, UploadJob.sha256.in_(shas))
        ).all()
        for job in jobs:
            job.state, job.bytes_confirmed, job.upload_url = JobState.PENDING, 0, None
            job.last_error = "the registry does not have this blob; sending it again"
            job.updated_at = utcnow()
