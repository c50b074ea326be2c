"""Contributions: create from envelope + manifest + metadata, finalize, list mine, get one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.domain.datanet_rules import Part
from app.durable import gc_paused
from registry import possession
from registry.auth import CurrentPrincipal, as_utc
from registry.contributions import (
    CreateInput,
    create_contribution,
    finalize,
    get_owned,
    missing_blobs,
)
from registry.datanets import Reason
from registry.db.models import STATE_SUBMITTED, Contribution
from registry.db.session import DbSession
from registry.errors import ERROR_RESPONSES, ApiError, ErrorResponse

router = APIRouter(tags=["contributions"], responses=ERROR_RESPONSES)

ContributionId = Annotated[str, Path(min_length=1, max_length=40)]


class DeclaredPart(BaseModel):
    path: str = Field(max_length=4096)
    format: str = Field(max_length=64)
    columns: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=1000
    )
    records: int | None = Field(default=None, ge=0)


class Metadata(BaseModel):
    datanet: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=500)
    kind: str = Field(description="dataset | annotation", max_length=32)
    parent: str | None = Field(default=None, max_length=40)
    license: str | None = Field(default=None, max_length=100)
    parts: list[DeclaredPart] = Field(
        default_factory=list,
        max_length=10_000,
        description="The contributor's format report (columns, records per part), declared: "
        "the datanet's content rules judge it; the registry does not re-parse the files",
    )


class ContributionCreate(BaseModel):
    envelope: dict[str, Any] = Field(description="DSSE envelope (payloadType, payload, signatures)")
    manifest: str = Field(description="base64 of the canonical manifest bytes", min_length=1)
    metadata: Metadata


class ContributionCreated(BaseModel):
    id: str
    state: str
    missingBlobs: list[str]
    reasons: list[Reason]


class ContributionOut(BaseModel):
    id: str
    cursor: str = Field(description="Monotonic position for ?after=")
    state: str = Field(description="submitted | pending-review | accepted | rejected")
    reasons: list[Reason]
    datanet: str
    kind: str
    title: str
    license: str | None
    parent: str | None
    fileCount: int
    totalSize: int
    manifestSha256: str
    owner: str
    signer: str
    createdAt: datetime
    updatedAt: datetime
    reviewNote: str | None = Field(
        default=None, description="The datanet owner's note with an accept/reject decision"
    )
    reviewedAt: datetime | None = None


class ContributionDetail(ContributionOut):
    missingBlobs: list[str]


class ContributionPage(BaseModel):
    items: list[ContributionOut]
    nextCursor: str | None = Field(
        description="Cursor of the last item (pass as ?after=); the request's own when empty"
    )
    hasMore: bool


def _out(row: Contribution) -> dict[str, Any]:
    return {
        "id": row.id,
        "cursor": str(row.seq),
        "state": row.state,
        "reasons": [Reason.model_validate(r) for r in row.reasons],
        "datanet": row.datanet,
        "kind": row.kind,
        "title": row.title,
        "license": row.license,
        "parent": row.parent_id,
        "fileCount": row.file_count,
        "totalSize": row.total_size,
        "manifestSha256": row.manifest_sha256,
        "owner": row.owner_fingerprint,
        "signer": row.signer_fingerprint,
        "createdAt": as_utc(row.created_at),
        "updatedAt": as_utc(row.updated_at),
        "reviewNote": row.review_note,
        "reviewedAt": as_utc(row.reviewed_at) if row.reviewed_at is not None else None,
    }


def registry_url(request: Request) -> str:
    """The URL contributors must sign: configured public_url, else the URL they called."""
    configured: str | None = request.app.state.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


@router.post(
    "/v1/contributions",
    response_model=ContributionCreated,
    status_code=201,
    responses={200: {"model": ContributionCreated, "description": "Already submitted"}},
)
def create(
    body: ContributionCreate,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: DbSession,
) -> ContributionCreated:
    """Store a signed contribution and answer which blobs still need uploading."""
    data = CreateInput(
        envelope=body.envelope,
        manifest_b64=body.manifest,
        datanet=body.metadata.datanet,
        title=body.metadata.title,
        kind=body.metadata.kind,
        parent=body.metadata.parent,
        license=body.metadata.license,
        parts=tuple(
            Part(p.path, p.format, tuple(p.columns), p.records) for p in body.metadata.parts
        ),
    )
    with gc_paused():  # a 10,000-file manifest is ~50,000 small objects, none in a cycle
        row, created, missing = create_contribution(session, principal, data, registry_url(request))
    if not created:
        response.status_code = 200
    if missing is None:
        missing = (
            missing_blobs(session, row.id, principal.all_fingerprints)
            if row.state == "submitted"
            else []
        )
    return ContributionCreated(
        id=row.id,
        state=row.state,
        missingBlobs=missing,
        reasons=[Reason.model_validate(r) for r in row.reasons],
    )


@router.post(
    "/v1/contributions/{contribution_id}/finalize",
    response_model=ContributionDetail,
    responses={409: {"model": ErrorResponse, "description": "Blobs still missing"}},
)
def finalize_contribution(
    contribution_id: ContributionId,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
) -> ContributionDetail:
    """Verify signature and every blob; accepted or rejected with reasons. Idempotent."""
    row = get_owned(session, principal, contribution_id)
    with gc_paused():
        row = finalize(session, request.app.state.blobs, row, principal.all_fingerprints)
    return ContributionDetail(**_out(row), missingBlobs=[])


@router.get("/v1/contributions", response_model=ContributionPage)
def list_contributions(
    principal: CurrentPrincipal,
    session: DbSession,
    mine: Annotated[bool, Query(description="Only the caller's (always true)")] = True,
    after: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ContributionPage:
    """The caller's contributions in creation order, after a cursor."""
    stmt = (
        select(Contribution)
        .where(Contribution.owner_fingerprint.in_(principal.all_fingerprints))
        .order_by(Contribution.seq)
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(Contribution.seq > int(after))
    rows = list(session.scalars(stmt).all())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [ContributionOut(**_out(r)) for r in rows]
    next_cursor = str(rows[-1].seq) if rows else after
    return ContributionPage(items=items, nextCursor=next_cursor, hasMore=more)


@router.get("/v1/contributions/{contribution_id}", response_model=ContributionDetail)
def get_contribution(
    contribution_id: ContributionId, principal: CurrentPrincipal, session: DbSession
) -> ContributionDetail:
    """One of the caller's contributions, with the blobs still missing (404 if not theirs)."""
    row = get_owned(session, principal, contribution_id)
    missing = (
        missing_blobs(session, row.id, principal.all_fingerprints)
        if row.state == "submitted"
        else []
    )
    return ContributionDetail(**_out(row), missingBlobs=missing)


Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", min_length=64, max_length=64)]


class ChallengeRequest(BaseModel):
    blobs: list[Sha256Hex] = Field(
        min_length=1,
        max_length=possession.MAX_CHALLENGES,
        description="sha256s of blobs this contribution lists",
    )


class PossessionChallengeOut(BaseModel):
    sha256: str
    nonce: str = Field(description="64 hex: 32 random bytes, single use")
    expiresAt: datetime


class ChallengeAnswer(BaseModel):
    challenges: list[PossessionChallengeOut]


class ProofIn(BaseModel):
    sha256: Sha256Hex
    proof: Sha256Hex = Field(description="hex possession proof over the nonce and the content")


class ProofRequest(BaseModel):
    proofs: list[ProofIn] = Field(min_length=1, max_length=possession.MAX_PROOFS)


class ProofAnswer(BaseModel):
    proven: list[str] = Field(description="Recorded as yours: no need to upload them")
    notProven: list[str] = Field(description="Upload these (the answer never says why)")


def _submitted(
    session: DbSession, principal: CurrentPrincipal, contribution_id: str
) -> Contribution:
    row = get_owned(session, principal, contribution_id)
    if row.state != STATE_SUBMITTED:
        raise ApiError(409, "not_uploadable", f"The contribution is {row.state}.")
    return row


_POSSESSION_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The contribution is not submitted"}
}


@router.post(
    "/v1/contributions/{contribution_id}/possession/challenges",
    response_model=ChallengeAnswer,
    responses=_POSSESSION_ERRORS,
)
def possession_challenges(
    contribution_id: ContributionId,
    body: ChallengeRequest,
    principal: CurrentPrincipal,
    session: DbSession,
) -> ChallengeAnswer:
    """A fresh nonce for each listed blob of your contribution, to prove you hold its bytes
    instead of uploading them. The same answer whether or not the registry stores the blob."""
    row = _submitted(session, principal, contribution_id)
    listed = possession.manifest_sizes(session, row.id, body.blobs)
    unknown = sorted(set(body.blobs) - listed.keys())
    if unknown:
        raise ApiError(
            422,
            "blob_not_expected",
            f"{len(unknown)} blob(s) are not listed by this contribution.",
            {"blobs": unknown[:100]},
        )
    issued = possession.issue(session, row, body.blobs)
    return ChallengeAnswer(
        challenges=[
            PossessionChallengeOut(sha256=c.sha256, nonce=c.nonce, expiresAt=c.expires_at)
            for c in issued
        ]
    )


@router.post(
    "/v1/contributions/{contribution_id}/possession/proofs",
    response_model=ProofAnswer,
    responses=_POSSESSION_ERRORS,
)
def possession_proofs(
    contribution_id: ContributionId,
    body: ProofRequest,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
) -> ProofAnswer:
    """Answers to possession challenges: each nonce is used up by its first answer. A proven
    blob counts as uploaded by you; upload the others."""
    row = _submitted(session, principal, contribution_id)
    proofs = {p.sha256: p.proof for p in body.proofs}
    proven, not_proven = possession.check(
        session, request.app.state.blobs, row, principal.fingerprint, proofs
    )
    return ProofAnswer(proven=proven, notProven=not_proven)
