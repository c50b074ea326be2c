"""POST /v1/keys/rotate: accept a key rotation statement and link the keys.

The statement (app.signing.rotation) is signed by both the old and the new key; after it the
new key owns everything the old key owned and the old key can no longer sign in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import update

from app.domain.errors import VerificationError
from app.signing import dsse
from app.signing.rotation import parse_rotation
from registry.auth import CurrentPrincipal
from registry.db.models import Contribution, Key, Token, Upload
from registry.db.session import DbSession
from registry.errors import ERROR_RESPONSES, ApiError

router = APIRouter(tags=["keys"], responses=ERROR_RESPONSES)


class RotateRequest(BaseModel):
    envelope: dict[str, Any] = Field(description="DSSE key-rotation envelope (old + new key)")


class RotateResponse(BaseModel):
    oldFingerprint: str
    newFingerprint: str
    role: str
    contributionsMoved: int


@router.post("/v1/keys/rotate", response_model=RotateResponse)
def rotate(body: RotateRequest, principal: CurrentPrincipal, session: DbSession) -> RotateResponse:
    """Link old → new. Call it signed in with the old key (or the new one). Idempotent."""
    try:
        rotation = parse_rotation(dsse.Envelope.from_dict(body.envelope))
    except VerificationError as exc:
        raise ApiError(422, "invalid_rotation", str(exc)) from exc
    old_fpr, new_fpr = rotation.old_fingerprint, rotation.new_fingerprint
    if principal.fingerprint not in (old_fpr, new_fpr):
        raise ApiError(403, "forbidden", "Sign in with the old or the new key to rotate.")
    old = session.get(Key, old_fpr)
    if old is None:
        raise ApiError(404, "not_found", "The old key is not registered here.")
    if old.rotated_to == new_fpr:
        return RotateResponse(
            oldFingerprint=old_fpr, newFingerprint=new_fpr, role=old.role, contributionsMoved=0
        )
    if old.rotated_to is not None:
        raise ApiError(409, "already_rotated", "The old key was already rotated to another key.")
    new = session.get(Key, new_fpr)
    if new is None:
        new = Key(fingerprint=new_fpr, public_key=rotation.new_public_key, role=old.role)
        session.add(new)
    elif new.rotated_to is not None:
        raise ApiError(409, "already_rotated", "The new key was itself rotated out.")
    session.flush()
    old.rotated_to = new_fpr
    old.rotated_at = datetime.now(UTC)
    moved = session.execute(
        update(Contribution)
        .where(Contribution.owner_fingerprint == old_fpr)
        .values(owner_fingerprint=new_fpr)
    ).rowcount  # type: ignore[attr-defined]
    session.execute(
        update(Upload).where(Upload.owner_fingerprint == old_fpr).values(owner_fingerprint=new_fpr)
    )
    session.execute(update(Token).where(Token.fingerprint == old_fpr).values(revoked=True))
    session.commit()
    return RotateResponse(
        oldFingerprint=old_fpr, newFingerprint=new_fpr, role=new.role, contributionsMoved=moved
    )
