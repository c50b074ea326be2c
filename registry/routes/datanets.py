"""Datanets: the collections contributions go to, with their owners and versioned rules.

Reading is public; any registered key can create a datanet (and owns it); only the owner
changes it and, with `review` on, accepts or rejects what waits in pending-review. `held`
answers which digests the datanet's accepted contributions hold, so the app can report exact
duplicates before signing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import select

from registry.auth import CurrentPrincipal
from registry.datanets import (
    DatanetCreate,
    DatanetOut,
    DatanetPage,
    DatanetUpdate,
    HeldAnswer,
    HeldQuery,
    ReviewDecision,
    ReviewQueue,
    create_datanet,
    datanet_out,
    decide,
    held_digests,
    owned_datanet,
    review_queue,
    update_datanet,
)
from registry.db.models import Datanet
from registry.db.session import DbSession
from registry.errors import ERROR_RESPONSES, ApiError

router = APIRouter(tags=["datanets"], responses=ERROR_RESPONSES)


class ReviewResult(BaseModel):
    id: str
    state: str = Field(description="accepted | rejected")
    reviewNote: str | None


DatanetId = Annotated[str, Path(max_length=64)]


@router.get("/v1/datanets", response_model=DatanetPage)
def list_datanets(session: DbSession) -> DatanetPage:
    rows = session.scalars(select(Datanet).order_by(Datanet.id)).all()
    return DatanetPage(items=[datanet_out(r) for r in rows])


@router.post("/v1/datanets", response_model=DatanetOut, status_code=201)
def create(body: DatanetCreate, principal: CurrentPrincipal, session: DbSession) -> DatanetOut:
    """A new datanet owned by the caller, at rules version 1."""
    return datanet_out(create_datanet(session, body, principal.fingerprint))


@router.get("/v1/datanets/{datanet_id}", response_model=DatanetOut)
def get_datanet(session: DbSession, datanet_id: DatanetId) -> DatanetOut:
    row = session.get(Datanet, datanet_id)
    if row is None:
        raise ApiError(404, "not_found", f"No datanet {datanet_id!r}.")
    return datanet_out(row)


@router.patch("/v1/datanets/{datanet_id}", response_model=DatanetOut)
def update(
    body: DatanetUpdate, principal: CurrentPrincipal, session: DbSession, datanet_id: DatanetId
) -> DatanetOut:
    """Owner only. New rules replace the old whole and increment rulesVersion."""
    return datanet_out(update_datanet(session, datanet_id, body, principal.all_fingerprints))


@router.post("/v1/datanets/{datanet_id}/held", response_model=HeldAnswer)
def held(body: HeldQuery, session: DbSession, datanet_id: DatanetId) -> HeldAnswer:
    """Which of these sha256 digests the datanet's ACCEPTED contributions already hold (public:
    that is the datanet's catalogue). Nothing is said about blobs outside it."""
    if session.get(Datanet, datanet_id) is None:
        raise ApiError(404, "not_found", f"No datanet {datanet_id!r}.")
    return HeldAnswer(held=held_digests(session, datanet_id, body.digests))


@router.get("/v1/datanets/{datanet_id}/reviews", response_model=ReviewQueue)
def reviews(principal: CurrentPrincipal, session: DbSession, datanet_id: DatanetId) -> ReviewQueue:
    """Owner only: the contributions waiting in pending-review, oldest first."""
    return review_queue(session, owned_datanet(session, datanet_id, principal.all_fingerprints))


@router.post("/v1/contributions/{contribution_id}/review", response_model=ReviewResult)
def review(
    body: ReviewDecision,
    principal: CurrentPrincipal,
    session: DbSession,
    contribution_id: Annotated[str, Path(min_length=1, max_length=40)],
) -> ReviewResult:
    """Owner of the contribution's datanet only: accept or reject it, with a note."""
    row = decide(session, contribution_id, body, principal.all_fingerprints)
    return ReviewResult(id=row.id, state=row.state, reviewNote=row.review_note)
