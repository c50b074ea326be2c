"""Who is calling: bearer tokens → Principal, and role checks.

Tokens come from the challenge/response flow in registry.routes.auth; only their sha256 is
stored. A rotated-out key's tokens stop working at rotation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import BindParameter, bindparam, literal, select, true
from sqlalchemy.orm import Session, aliased, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.db.models import Key, Token
from registry.db.session import DbSession
from registry.errors import ApiError

AUTH_DOMAIN = b"contributor-desk-auth-v1\n"

MAX_ROTATIONS = 1000  # keys followed back through rotations when resolving a token

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


def _principal_query() -> Any:
    """One statement for everything a request's bearer token decides: the token's expiry and
    revocation, its key (role, rotation) and every key rotated into that key, directly or
    transitively (a recursive walk down `rotated_to`). One row per predecessor, nearest first,
    or a single row with a NULL predecessor; no row for an unknown token."""
    digest: BindParameter[str] = bindparam("digest")
    prev_key = aliased(Key)
    chain = (
        select(Key.fingerprint.label("fp"), literal(1).label("depth"))
        .join(Token, Key.rotated_to == Token.fingerprint)
        .where(Token.token_sha256 == digest)
        .cte("prev_keys", recursive=True)
    )
    chain = chain.union(
        select(prev_key.fingerprint, chain.c.depth + 1)
        .join(chain, prev_key.rotated_to == chain.c.fp)
        .where(chain.c.depth < MAX_ROTATIONS)  # a bound even on a corrupt (cyclic) chain
    )
    return (
        select(
            Token.expires_at,
            Token.revoked,
            Key.fingerprint,
            Key.public_key,
            Key.role,
            Key.rotated_to,
            chain.c.fp,
        )
        .join(Key, Key.fingerprint == Token.fingerprint)
        .outerjoin(chain, true())
        .where(Token.token_sha256 == digest)
        .order_by(chain.c.depth, chain.c.fp)
    )


_PRINCIPAL_QUERY = _principal_query()


def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: DbSession,
) -> Principal:
    """Resolve the bearer token; 401 with WWW-Authenticate when missing, forged or expired.

    Every request reads the token and its key afresh (one indexed statement, nothing cached),
    so an expired token, a token revoked by a key rotation and a rotated-out key are refused
    from the very next request, in every worker process."""
    return principal_of(request, credentials, session)


async def require_principal_own_session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """`require_principal` for routes that open their own session (hot reads): the token is
    read on one worker-thread hop with a short session of its own, instead of a request-wide
    session dependency (two more hops: its start and its end). Same checks, same answers."""
    _need_bearer(credentials)
    sessions: sessionmaker[Session] = request.app.state.sessions

    def resolve() -> Principal:
        with sessions() as session:
            return principal_of(request, credentials, session)

    return await run_in_threadpool(resolve)


def _need_bearer(credentials: HTTPAuthorizationCredentials | None) -> None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("A bearer token is required; get one from /v1/auth/token.")


def principal_of(
    request: Request, credentials: HTTPAuthorizationCredentials | None, session: Session
) -> Principal:
    """The caller of this request (see `require_principal`), recorded on request.state."""
    _need_bearer(credentials)
    assert credentials is not None
    rows = (
        session.connection()
        .execute(_PRINCIPAL_QUERY, {"digest": token_digest(credentials.credentials)})
        .all()
    )
    if not rows or rows[0].revoked:
        raise _unauthorized("The token is not valid; authenticate again.")
    first = rows[0]
    if as_utc(first.expires_at) <= datetime.now(UTC):
        raise _unauthorized("The token has expired; authenticate again.")
    if first.rotated_to is not None:
        raise _unauthorized("The key of this token was rotated; authenticate with the new key.")
    previous: list[str] = []
    for r in rows:
        if r.fp is not None and r.fp != first.fingerprint and r.fp not in previous:
            previous.append(r.fp)
    principal = Principal(
        fingerprint=first.fingerprint,
        public_key=first.public_key,
        role=first.role,
        previous_fingerprints=tuple(previous),
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
"""Type for route parameters: `principal: CurrentPrincipal`."""

OwnSessionPrincipal = Annotated[Principal, Depends(require_principal_own_session)]
"""`principal: OwnSessionPrincipal` in a route that takes no `DbSession` (it opens its own
session inside: `with request.app.state.sessions() as session`)."""


def require_role(role: str) -> Callable[..., Principal]:
    """Dependency factory: the caller must hold `role` (403 otherwise)."""

    def _check(principal: CurrentPrincipal) -> Principal:
        if principal.role != role:
            raise ApiError(403, "forbidden", f"This action needs the {role} role.")
        return principal

    return _check
