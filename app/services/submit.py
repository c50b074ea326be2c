"""Submit: re-check, sign, queue, and (when the registry answers) create the contribution.

Submitting never needs the network: the signed contribution and a "create contribution" job
are committed locally in one transaction with the signed → queued transition. The registry
calls (create, finalize) live here too, because both `submit` and the upload queue make them;
each writes its result and its lifecycle transition in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import delete, distinct, func, insert, literal, select, update
from sqlalchemy.orm import Session

from app.domain.errors import (
    BadInputError,
    NotFoundError,
    RegistryRefused,
    UsageError,
    VerificationError,
)
from app.domain.gcpause import gc_paused
from app.domain.states import State
from app.registry_client.api import ContributionStatus, Reason, RegistryClient
from app.registry_client.http import ApiRefused
from app.services.context import ServiceContext
from app.services.history import record_event, transition
from app.services.identity import PassphraseFn
from app.services.possession import prove_held
from app.services.signing import SigningService, cached_rules_version
from app.settings import DATANET
from app.signing import dsse
from app.signing.statement import normalise_registry, parse_statement
from app.store.models import Envelope, FileEntry, Item, ManifestRecord, utcnow
from app.store.queue_models import JOB_BLOB, JOB_CREATE, UploadJob

DEFAULT_DATANET = "open-data"
LOCAL_STATES = frozenset({State.DRAFT, State.SIGNED, State.REJECTED})
SHOWN = 10
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    item_id: int
    state: State
    registry_id: str | None
    blobs_to_upload: int
    bytes_to_upload: int
    offline: bool  # the registry could not be reached: it goes out when it can
    message: str


class CatalogFile(NamedTuple):
    """The catalogued facts about one file that the re-check compares with the disk."""

    id: int
    path: str
    size: int
    sha256: str
    mtime_ns: int


def check_files(root: str, files: Iterable[CatalogFile]) -> tuple[list[str], dict[int, int]]:
    """What changed since the item was added: missing or different files (size+mtime fast
    path, sha256 only when the fast path says 'maybe'). Also returns {file id: new mtime_ns}
    for files that were only touched (same bytes), so the caller can keep the fast path fast.
    """
    changed: list[str] = []
    touched: dict[int, int] = {}
    for f in files:
        path = os.path.join(root, f.path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            changed.append(f"{f.path} (missing)")
            continue
        except OSError as exc:
            changed.append(f"{f.path} (cannot be read: {exc.strerror})")
            continue
        if st.st_size != f.size:
            changed.append(f"{f.path} (size {f.size} → {st.st_size})")
        elif st.st_mtime_ns != f.mtime_ns:
            if _sha256(path) != f.sha256:
                changed.append(f"{f.path} (content changed)")
            else:
                touched[f.id] = st.st_mtime_ns
    return changed, touched


def catalogued_files(s: Session, item_id: int) -> list[CatalogFile]:
    """Core rows, not ORM objects: a contribution can have 10,000s of files."""
    return [
        CatalogFile(*row)
        for row in s.execute(
            select(
                FileEntry.id, FileEntry.path, FileEntry.size, FileEntry.sha256, FileEntry.mtime_ns
            ).where(FileEntry.item_id == item_id)
        )
    ]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def changed_message(item_id: int, changed: list[str]) -> str:
    more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
    return f"item #{item_id} changed since it was added: {'; '.join(changed[:SHOWN])}{more}"


def _latest_envelope(s: Session, item: Item) -> Envelope | None:
    return s.scalars(
        select(Envelope).where(Envelope.item_id == item.id).order_by(Envelope.id.desc())
    ).first()


def _manifest_bytes(s: Session, item_id: int) -> bytes:
    rec = s.scalars(
        select(ManifestRecord)
        .where(ManifestRecord.item_id == item_id)
        .order_by(ManifestRecord.id.desc())
    ).first()
    if rec is None:
        raise BadInputError(f"item #{item_id} has no manifest; add it again")
    return rec.canonical


def _metadata(envelope: dict[str, Any], report: dict[str, Any] | None = None) -> dict[str, Any]:
    """The create metadata, taken from the signed statement so they cannot disagree, and the
    parts of the item's format report (what the datanet's content rules judge)."""
    from app.services.datanets import declared_parts

    pred = parse_statement(dsse.Envelope.from_dict(envelope).payload).predicate
    return {
        "datanet": pred.datanet,
        "title": pred.title,
        "kind": pred.kind,
        "parent": pred.parent,
        "license": pred.license or None,
        "parts": declared_parts(report or {}),
    }


def _signed_rules_version(envelope: dict[str, Any]) -> int | None:
    try:
        return parse_statement(dsse.Envelope.from_dict(envelope).payload).predicate.rules_version
    except VerificationError:
        return None


def _reasons_json(reasons: tuple[Reason, ...]) -> list[dict[str, Any]]:
    return [{"code": r.code, "message": r.message, "path": r.path} for r in reasons]


def _reasons_text(reasons: tuple[Reason, ...]) -> str:
    return "; ".join(r.text() for r in reasons) or "no reason given"


# -- registry calls shared with the queue ----------------------------------------------------


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
        env = _latest_envelope(s, item)
        if env is None:
            raise UsageError(f"item #{item_id} is not signed")
        envelope, manifest = env.envelope, _manifest_bytes(s, item_id)
        report = dict(item.report or {})
    try:
        created = client.create_contribution(envelope, manifest, _metadata(envelope, report))
    except RegistryRefused as exc:
        with ctx.db.session() as s:
            item = s.get_one(Item, item_id)
            s.execute(
                update(UploadJob)
                .where(UploadJob.item_id == item_id, UploadJob.kind == JOB_CREATE)
                .values(state="failed", last_error=exc.message, updated_at=utcnow())
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
                literal(item_id), literal(JOB_BLOB), files.c.sha256,
                func.json_group_array(files.c.path), func.min(files.c.size),
                literal("pending"), literal(0), literal(""), literal(0),
                literal(now, stamp), literal(now, stamp),
            ).group_by(files.c.sha256),
        )
    )  # fmt: skip
    jobs, size = s.execute(
        select(func.count(), func.coalesce(func.sum(UploadJob.size), 0)).where(
            UploadJob.item_id == item_id, UploadJob.kind == JOB_BLOB
        )
    ).one()
    return int(jobs), int(size)


def apply_status(ctx: ServiceContext, item_id: int, status: ContributionStatus) -> State:
    """Record what the registry says about a contribution (finalize answer or sync)."""
    with ctx.db.session() as s:
        item = s.get_one(Item, item_id)
        state = State(item.state)
        if status.state not in ("accepted", "rejected", "submitted"):
            return state
        if state in (State.QUEUED, State.UPLOADING):
            transition(s, item, State.SUBMITTED, "submitted", "all blobs uploaded")
        if State(item.state) is State.SUBMITTED:
            if status.state == "accepted":
                transition(s, item, State.ACCEPTED, "accepted", "")
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
            job.state, job.bytes_confirmed, job.upload_url = "pending", 0, None
            job.last_error = "the registry does not have this blob; sending it again"
            job.updated_at = utcnow()


# -- the use case ----------------------------------------------------------------------------


class SubmitService:
    """`submit ID`: the same for CLI and GUI; the upload itself is UploadQueue's job."""

    def __init__(self, ctx: ServiceContext, signing: SigningService | None = None) -> None:
        self._ctx = ctx
        self._signing = signing or SigningService(ctx)

    def prepare(
        self,
        item_id: int,
        *,
        datanet: str | None = None,
        registry_url: str | None = None,
        passphrase: str | PassphraseFn | None = None,
    ) -> None:
        """Re-check files, sign if needed, and queue locally (no network)."""
        url = normalise_registry(registry_url or self._ctx.registry_url)
        net = self._datanet(datanet)
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise NotFoundError(
                    f"there is no item #{item_id} in the catalogue",
                    hint="see `contributor-desk list`",
                )
            state = State(item.state)
            if state not in LOCAL_STATES:
                raise UsageError(
                    f"item #{item_id} is already {state.value}",
                    hint="see `contributor-desk queue`" if state is not State.ACCEPTED else None,
                )
            changed, touched = check_files(item.source_path, catalogued_files(s, item_id))
            if touched:
                s.execute(
                    update(FileEntry),
                    [{"id": fid, "mtime_ns": m} for fid, m in touched.items()],
                )
            if changed:
                raise BadInputError(
                    changed_message(item_id, changed),
                    hint="restore the files, or add the folder again as a new item",
                )
            env = _latest_envelope(s, item)
            fresh = (
                state is State.SIGNED
                and env is not None
                and normalise_registry(env.registry_url) == url
                and env.datanet == net
                and env.manifest_digest == item.manifest_digest
                and (_signed_rules_version(env.envelope) or 1)
                == (cached_rules_version(self._ctx, url, net) or 1)
            )
        if not fresh:
            self._signing.sign_item(item_id, registry_url=url, datanet=net, passphrase=passphrase)
        with self._ctx.db.session() as s:
            item = s.get_one(Item, item_id)
            item.registry_id = None
            item.rejection_reasons = []
            s.execute(delete(UploadJob).where(UploadJob.item_id == item_id))
            s.add(UploadJob(item_id=item_id, kind=JOB_CREATE, state="pending"))
            transition(s, item, State.QUEUED, "queued", f"for {url} datanet {net}")

    def _datanet(self, datanet: str | None) -> str:
        """The datanet a submit goes to: the one asked for, else the setting, else the default."""
        return datanet or self._ctx.settings.get(DATANET) or DEFAULT_DATANET

    def check_datanet(self, item_id: int, datanet: str | None, client: RegistryClient) -> None:
        """Before anything is signed: the datanet's rules, evaluated here exactly as the
        registry will (app.services.datanets, app.domain.datanet_rules). Broken rules raise
        BadInputError listing them all, each with its rule and file; a registry that cannot be
        reached leaves the check to the cached rules (none cached: to the registry, and the
        queue reports a rejection)."""
        from app.services.datanets import DatanetService

        net = self._datanet(datanet)
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None or State(item.state) not in LOCAL_STATES:
                return  # prepare() explains why it will not submit, with a hint
        check = DatanetService(self._ctx).check_item(item_id, net, client)
        if check.note:
            log.info("datanet %s: %s", net, check.note)
        if check.problems:
            shown = list(check.texts)
            more = f" and {len(shown) - SHOWN} more" if len(shown) > SHOWN else ""
            raise BadInputError(
                f"item #{item_id} would be rejected by datanet {net!r}: "
                f"{'; '.join(shown[:SHOWN])}{more}",
                hint="nothing was signed or sent; change the item or choose another datanet",
            )

    def submit(
        self,
        item_id: int,
        *,
        datanet: str | None = None,
        passphrase: str | PassphraseFn | None = None,
        client: RegistryClient | None = None,
    ) -> SubmitResult:
        """Queue locally, then try to create at the registry; offline is not an error."""
        from app.domain.errors import RegistryUnavailable
        from app.services.uploads import make_client

        own = client is None
        client = client or make_client(self._ctx, passphrase=passphrase)
        try:
            self.check_datanet(item_id, datanet, client)
            # Paused collector: a 10,000-file submit builds ~100,000 small objects (file rows,
            # manifest entries, the missing-blob list) that are never in a reference cycle.
            with gc_paused():
                self.prepare(item_id, datanet=datanet, passphrase=passphrase)
            with gc_paused():
                return create_remote(self._ctx, client, item_id)
        except RegistryUnavailable as exc:
            return SubmitResult(item_id, State.QUEUED, None, 0, 0, True, str(exc))
        finally:
            if own:
                client.close()
