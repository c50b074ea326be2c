"""Who is calling: bearer tokens → Principal, and role checks.

Tokens come from the challenge/response flow in registry.routes.auth; only their sha256 is
stored. A rotated-out key's tokens stop working at rotation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import Key, Token
from registry.db.session import DbSession
from registry.errors import ApiError

AUTH_DOMAIN = b"contributor-desk-auth-v1\n"

_bearer = HTTPBearer(auto_error=False, description="Token from POST /v1/auth/token")


@dataclass(frozen=True)
class Principal:
    """An authenticated key holder. `fingerprint` = hex sha256 of the raw Ed25519 public key."""

    fingerprint: str
    public_key: str
    role: str
    # Keys this key replaced by rotation (newest first): their ledger rows are this caller's too.
    previous_fingerprints: tuple[str, ...] = ()

    @property
    def all_fingerprints(self) -> tuple[str, ...]:
        """This key and every key it succeeded: filter owner columns with IN (...) on these."""
        return (self.fingerprint, *self.previous_fingerprints)


def fingerprint_of(public_key_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def auth_message(nonce: str) -> bytes:
    """The exact bytes a client signs to prove key possession (documented in protocol.md)."""
    return AUTH_DOMAIN + nonce.encode("ascii")


def previous_keys(session: Session, fingerprint: str) -> tuple[str, ...]:
    """Fingerprints of the keys rotated (directly or transitively) into `fingerprint`."""
    found: list[str] = []
    frontier = [fingerprint]
    while frontier:
        rows = session.scalars(select(Key.fingerprint).where(Key.rotated_to.in_(frontier))).all()
        frontier = [r for r in rows if r not in found and r != fingerprint]
        found.extend(frontier)
    return tuple(found)


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message,
        headers={"WWW-Authenticate": 'Bearer realm="contributor-registry"'},
    )


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes, PostgreSQL the session's zone; we store UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: DbSession,
) -> Principal:
    """Resolve the bearer token; 401 with WWW-Authenticate when missing, forged or expired."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("A bearer token is required; get one from /v1/auth/token.")
    row = session.get(Token, token_digest(credentials.credentials))
    if row is None or row.revoked:
        raise _unauthorized("The token is not valid; authenticate again.")
    if as_utc(row.expires_at) <= datetime.now(UTC):
        raise _unauthorized("The token has expired; authenticate again.")
    key = session.get(Key, row.fingerprint)
    if key is None or key.rotated_to is not None:
        raise _unauthorized("The key of this token was rotated; authenticate with the new key.")
    principal = Principal(
        fingerprint=key.fingerprint,
        public_key=key.public_key,
        role=key.role,
        previous_fingerprints=previous_keys(session, key.fingerprint),
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
"""Type for route parameters: `principal: CurrentPrincipal`."""


def require_role(role: str) -> Callable[..., Principal]:
    """Dependency factory: the caller must hold `role` (403 otherwise)."""

    def _check(principal: CurrentPrincipal) -> Principal:
        if principal.role != role:
            raise ApiError(403, "forbidden", f"This action needs the {role} role.")
        return principal

    return _check
