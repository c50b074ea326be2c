"""Challenge/response login with Ed25519: prove key possession, get a short-lived token.

Message signed by the client: b"contributor-desk-auth-v1\\n" + nonce (ASCII hex). The domain
prefix keeps an auth signature from ever being valid as a DSSE or rotation signature.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import update

from app.domain.errors import VerificationError
from app.signing.identity import load_public_raw, public_key_problem, verify_strict
from registry.auth import as_utc, auth_message, fingerprint_of, token_digest
from registry.db.models import ROLE_CONTRIBUTOR, AuthChallenge, Key, Token
from registry.db.session import DbSession
from registry.errors import ERROR_RESPONSES, ApiError
from registry.settings import RegistrySettings

router = APIRouter(tags=["auth"], responses=ERROR_RESPONSES)

HEX_KEY = r"^[0-9a-fA-F]{64}$"


class ChallengeRequest(BaseModel):
    publicKey: str = Field(pattern=HEX_KEY, description="Raw Ed25519 public key, 64 hex chars")


class ChallengeResponse(BaseModel):
    nonce: str
    expiresAt: datetime


class TokenRequest(BaseModel):
    publicKey: str = Field(pattern=HEX_KEY)
    nonce: str = Field(min_length=1, max_length=64)
    signature: str = Field(
        min_length=1, max_length=200, description="base64 Ed25519 signature of the auth message"
    )


class TokenResponse(BaseModel):
    token: str
    expiresAt: datetime
    fingerprint: str
    role: str


def _settings(request: Request) -> RegistrySettings:
    settings: RegistrySettings = request.app.state.settings
    return settings


@router.post("/v1/auth/challenge", response_model=ChallengeResponse)
def challenge(body: ChallengeRequest, request: Request, session: DbSession) -> ChallengeResponse:
    """A fresh single-use nonce for this key, valid for a few minutes."""
    reason = public_key_problem(bytes.fromhex(body.publicKey))
    if reason is not None:
        raise ApiError(422, "weak_key", f"This public key is refused: {reason}.")
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=_settings(request).challenge_ttl_s)
    nonce = secrets.token_hex(32)
    session.add(AuthChallenge(nonce=nonce, public_key=body.publicKey.lower(), expires_at=expires))
    session.commit()
    return ChallengeResponse(nonce=nonce, expiresAt=expires)


def _bad_login(message: str) -> ApiError:
    return ApiError(
        401,
        "auth_failed",
        message,
        headers={"WWW-Authenticate": 'Bearer realm="contributor-registry"'},
    )


@router.post("/v1/auth/token", response_model=TokenResponse)
def token(body: TokenRequest, request: Request, session: DbSession) -> TokenResponse:
    """Exchange a signed nonce for a bearer token; first login registers the key."""
    public_key = body.publicKey.lower()
    now = datetime.now(UTC)
    # Consume the nonce atomically first: a replay (even a concurrent one) finds it used.
    consumed = session.execute(
        update(AuthChallenge)
        .where(
            AuthChallenge.nonce == body.nonce,
            AuthChallenge.public_key == public_key,
            AuthChallenge.used_at.is_(None),
        )
        .values(used_at=now)
    )
    session.commit()
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise _bad_login("Unknown or already used nonce; request a new challenge.")
    ch = session.get(AuthChallenge, body.nonce)
    if ch is None or as_utc(ch.expires_at) <= now:
        raise _bad_login("The challenge has expired; request a new one.")
    try:
        signature = base64.b64decode(body.signature, validate=True)
        pub = load_public_raw(bytes.fromhex(public_key))
        verify_strict(pub, signature, auth_message(body.nonce))
    except (binascii.Error, ValueError, VerificationError, InvalidSignature) as exc:
        raise _bad_login("The signature does not verify with this public key.") from exc
    fpr = fingerprint_of(public_key)
    key = session.get(Key, fpr)
    if key is None:
        key = Key(fingerprint=fpr, public_key=public_key, role=ROLE_CONTRIBUTOR)
        session.add(key)
    elif key.rotated_to is not None:
        raise _bad_login("This key was rotated out; sign in with its successor.")
    raw = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=_settings(request).token_ttl_s)
    session.add(Token(token_sha256=token_digest(raw), fingerprint=fpr, expires_at=expires))
    session.commit()
    return TokenResponse(token=raw, expiresAt=expires, fingerprint=fpr, role=key.role)
