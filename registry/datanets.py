"""Datanets: owned collections with versioned acceptance rules, and the rules' evaluation
against a contribution (at create and at finalize).

Rules are stored as JSON on the datanet row; empty lists mean "anything". Every change of the
rules increments `rules_version`; a contribution signs the version it was checked against
(docs/protocol.md, "Datanets"). The evaluation itself lives in app.domain.datanet_rules: the app
runs the same code before signing, so users learn about rejections before uploading.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel, Field
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.domain import datanet_rules as domain_rules
from app.manifest.canonical import is_sha256_hex
from registry import translog
from registry.auth import as_utc
from registry.db.models import (
    STATE_ACCEPTED,
    STATE_PENDING_REVIEW,
    STATE_REJECTED,
    Contribution,
    ContributionFile,
    Datanet,
)
from registry.errors import ApiError

DATANET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
MAX_HELD_QUERY = 10_000  # digests per "which do you hold" question


class DatanetRules(BaseModel):
    kinds: list[str] = Field(default_factory=lambda: ["dataset", "annotation"])
    formats: list[str] = Field(
        default_factory=list, description="Accepted file extensions (lowercase, no dot); [] = any"
    )
    licenses: list[str] = Field(
        default_factory=list, description="Accepted SPDX license ids; [] = any"
    )
    maxTotalSize: int | None = Field(default=None, description="Bytes; null = unlimited")
    maxFiles: int | None = None
    review: bool = Field(default=False, description="The datanet owner reviews submissions")
    requiredColumns: list[str] = Field(
        default_factory=list,
        description="Columns every table (CSV, TSV, Parquet, JSON Lines) must have; [] = any",
    )
    minRecords: int | None = Field(
        default=None, description="Records over all parts, as format detection counts them"
    )
    noDuplicates: bool = Field(
        default=False,
        description="No file the datanet's accepted contributions hold, and no file twice",
    )


class DatanetOut(BaseModel):
    id: str
    name: str
    description: str
    owner: str | None = Field(description="Fingerprint of the owning key; null = the operator")
    rules: DatanetRules
    rulesVersion: int = Field(description="Increases by one on every change of the rules")
    createdAt: datetime
    updatedAt: datetime | None


class DatanetCreate(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="3-64 lowercase letters, digits, -")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    rules: DatanetRules = Field(default_factory=DatanetRules)


class DatanetUpdate(BaseModel):
    """Fields left out stay as they are; new rules replace the old ones whole."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    rules: DatanetRules | None = None


class HeldQuery(BaseModel):
    digests: list[str] = Field(max_length=MAX_HELD_QUERY, description="sha256 hex digests")


class HeldAnswer(BaseModel):
    held: list[str] = Field(
        description="Those of the digests that accepted contributions of this datanet hold"
    )


class DatanetPage(BaseModel):
    items: list[DatanetOut]


class Reason(BaseModel):
    """A machine-readable rejection reason."""

    code: str
    message: str
    path: str | None = None


def datanet_out(row: Datanet) -> DatanetOut:
    return DatanetOut(
        id=row.id,
        name=row.name,
        description=row.description,
        owner=row.owner_fingerprint,
        rules=DatanetRules.model_validate(row.rules),
        rulesVersion=row.rules_version,
        createdAt=as_utc(row.created_at),
        updatedAt=as_utc(row.updated_at) if row.updated_at is not None else None,
    )


def checked_rules(rules: DatanetRules) -> dict[str, Any]:
    """The rules' stored JSON, read back through the shared evaluator's parser (422 if it
    cannot read them: a rule the app could not evaluate must not be stored)."""
    raw = rules.model_dump()
    try:
        parsed = domain_rules.DatanetRules.from_json(raw)
    except ValueError as exc:
        raise ApiError(422, "invalid_rules", str(exc)) from None
    for name in ("maxTotalSize", "maxFiles", "minRecords"):
        if raw[name] is not None and raw[name] < 0:
            raise ApiError(422, "invalid_rules", f"{name} is not a non-negative integer")
    return parsed.to_json()


def create_datanet(session: Session, body: DatanetCreate, owner: str | None) -> Datanet:
    """A new datanet at rules version 1, owned by `owner` (None: the operator's)."""
    if not DATANET_ID.match(body.id):
        raise ApiError(
            422,
            "invalid_datanet_id",
            "A datanet id is 3-64 lowercase letters, digits and '-', not starting or ending "
            "with '-'.",
        )
    rules = checked_rules(body.rules)
    if session.get(Datanet, body.id) is not None:
        raise ApiError(409, "conflict", f"There is already a datanet {body.id!r}.")
    row = Datanet(
        id=body.id,
        name=body.name.strip() or body.id,
        description=body.description.strip(),
        rules=rules,
        owner_fingerprint=owner,
        rules_version=1,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.commit()
    return row


def update_datanet(
    session: Session, datanet_id: str, body: DatanetUpdate, editors: Collection[str] | None
) -> Datanet:
    """Change name, description or rules; `editors` are the caller's fingerprints (None: an
    operator, who may edit any datanet). A change of the rules increments the version."""
    row = session.get(Datanet, datanet_id, with_for_update=True)
    if row is None:
        raise ApiError(404, "not_found", f"No datanet {datanet_id!r}.")
    if editors is not None and row.owner_fingerprint not in editors:
        raise ApiError(403, "forbidden", "Only the datanet's owner can change it.")
    changed = False
    if body.name is not None and body.name.strip() and body.name.strip() != row.name:
        row.name, changed = body.name.strip(), True
    if body.description is not None and body.description.strip() != row.description:
        row.description, changed = body.description.strip(), True
    if body.rules is not None:
        rules = checked_rules(body.rules)
        if rules != domain_rules.DatanetRules.from_json(row.rules).to_json():
            row.rules = rules
            row.rules_version += 1
            changed = True
    if changed:
        row.updated_at = datetime.now(UTC)
    session.commit()
    return row


def held_digests(session: Session, datanet_id: str, digests: Iterable[str]) -> list[str]:
    """Which of `digests` the datanet's ACCEPTED contributions hold. Nothing about blobs
    stored for other datanets, pending or rejected contributions: what this answers is the
    datanet's public catalogue, never whether the registry stores some bytes."""
    wanted = sorted({d for d in digests if is_sha256_hex(d)})
    if not wanted:
        return []
    cf = cast(Table, ContributionFile.__table__).c
    c = cast(Table, Contribution.__table__).c
    found: set[str] = set()
    conn = session.connection()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(cf.sha256)
            .join(Contribution.__table__, c.id == cf.contribution_id)
            .where(c.datanet == datanet_id, c.state == STATE_ACCEPTED, cf.sha256.in_(chunk))
            .distinct()
        ).all()
        found.update(r[0] for r in rows)
    return sorted(found)


def declared_parts(raw: Sequence[Mapping[str, Any]] | None) -> list[domain_rules.Part]:
    """The parts a contributor declared (metadata.parts); 422 when one is malformed."""
    parts = []
    for item in raw or []:
        try:
            parts.append(domain_rules.Part.from_json(item))
        except ValueError as exc:
            raise ApiError(422, "invalid_parts", str(exc)) from None
    return parts


def evaluate_rules(
    rules_json: dict[str, Any],
    *,
    kind: str,
    license: str | None,
    files: Sequence[tuple[str, int]],
    parts: Sequence[domain_rules.Part] = (),
    digests: Mapping[str, str] | None = None,
    held: Collection[str] = (),
) -> list[Reason]:
    """Every rule the contribution breaks, as reasons (empty list = acceptable); the same
    evaluation the app runs before signing (app.domain.datanet_rules)."""
    rules = domain_rules.DatanetRules.from_json(rules_json)
    return [
        Reason(code=p.code, message=p.message, path=p.path)
        for p in domain_rules.evaluate(
            rules,
            kind=kind,
            license=license,
            files=files,
            parts=parts,
            digests=digests,
            held=held,
        )
    ]


# -- review -----------------------------------------------------------------------------------

MAX_NOTE = 2000


class ReviewItem(BaseModel):
    """A contribution waiting for the owner: what the owner judges it by."""

    id: str
    datanet: str
    contributor: str = Field(description="Fingerprint of the contributor's key")
    title: str
    kind: str
    license: str | None
    fileCount: int
    totalSize: int
    parts: list[dict[str, Any]] = Field(description="The declared format report")
    rulesVersion: int | None = Field(description="The rules version it was signed and checked by")
    reasons: list[Reason] = Field(description="Broken rules (none: it passed every rule)")
    createdAt: datetime


class ReviewQueue(BaseModel):
    items: list[ReviewItem]


class ReviewDecision(BaseModel):
    decision: str = Field(pattern="^(accept|reject)$", description="accept | reject")
    note: str = Field(default="", max_length=MAX_NOTE)


def owned_datanet(session: Session, datanet_id: str, owners: Collection[str]) -> Datanet:
    row = session.get(Datanet, datanet_id)
    if row is None:
        raise ApiError(404, "not_found", f"No datanet {datanet_id!r}.")
    if row.owner_fingerprint not in owners:
        raise ApiError(403, "forbidden", "Only the datanet's owner reviews its contributions.")
    return row


def review_queue(session: Session, datanet: Datanet, limit: int = 500) -> ReviewQueue:
    rows = session.scalars(
        select(Contribution)
        .where(Contribution.datanet == datanet.id, Contribution.state == STATE_PENDING_REVIEW)
        .order_by(Contribution.seq)
        .limit(limit)
    ).all()
    return ReviewQueue(
        items=[
            ReviewItem(
                id=r.id,
                datanet=r.datanet,
                contributor=r.owner_fingerprint,
                title=r.title,
                kind=r.kind,
                license=r.license,
                fileCount=r.file_count,
                totalSize=r.total_size,
                parts=list((r.tables or {}).get("parts") or []),
                rulesVersion=r.rules_version,
                reasons=[Reason.model_validate(x) for x in r.reasons],
                createdAt=as_utc(r.created_at),
            )
            for r in rows
        ]
    )


def decide(
    session: Session, contribution_id: str, body: ReviewDecision, owners: Collection[str]
) -> Contribution:
    """The owner's decision on a pending contribution: accepted (it may earn from then on) or
    rejected with the note as its reason. Deciding again the same way answers the same."""
    row = session.scalar(
        select(Contribution).where(Contribution.id == contribution_id).with_for_update()
    )
    if row is None:
        raise ApiError(404, "not_found", "No such contribution.")
    owned_datanet(session, row.datanet, owners)
    wanted = STATE_ACCEPTED if body.decision == "accept" else STATE_REJECTED
    note = body.note.strip()
    if row.state != STATE_PENDING_REVIEW:
        if row.state == wanted and row.reviewed_at is not None:
            return row
        raise ApiError(
            409, "conflict", f"This contribution is {row.state}, not waiting for a review."
        )
    now = datetime.now(UTC)
    row.state = wanted
    row.review_note = note or None
    row.reviewed_at = now
    row.updated_at = now
    if wanted == STATE_REJECTED:
        row.reasons = [
            {
                "code": "rejected_by_owner",
                "message": note or "The datanet's owner rejected this contribution.",
            }
        ]
    else:
        translog.contribution_accepted(session, row)  # a leaf of the transparency log
    session.commit()
    return row
