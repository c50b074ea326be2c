"""Per-key token-bucket rate limiting: 429 with Retry-After and the standard error body.

Two budgets per key: the general one (rate_limit_per_minute) and a larger one for the blob
upload routes under /v1/uploads (upload_rate_limit_per_minute). Why: one tus upload is at
least two requests (POST, PATCH per chunk), so a dataset of a few thousand medium files would
otherwise be throttled for minutes by a limit meant for API calls; those routes are bounded by
their bodies (chunk and batch size limits) and only accept blobs a contribution lists as
missing, so counting their requests in a separate, higher bucket keeps the protection without
stalling honest uploads. Either budget being spent never blocks the other.

The key is the caller's key fingerprint when the request carries a valid bearer token (so
minting more tokens does not buy more requests), otherwise the client's IP address. Pure ASGI
middleware so uploads stream through untouched; buckets live on the middleware instance (one
per app), never in module globals.

Where the buckets are kept: in the process's memory (`TokenBuckets`) when the registry is one
process (SQLite), in the database (`SharedTokenBuckets`, table `rate_limit_buckets`) on
PostgreSQL, so that a key's budget holds in total across the API processes of
`serve --workers N` (or several `serve` processes behind a load balancer) instead of N times
over. A shared take is one atomic upsert on the caller's row (a few hundred microseconds, off
the event loop in a worker thread).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.auth import as_utc, token_digest
from registry.db.models import Token
from registry.settings import RegistrySettings

# Liveness probes must keep working while a client is being throttled.
EXEMPT_PATHS = frozenset({"/v1/health"})
# Routes that spend the upload budget instead of the general one.
UPLOAD_PREFIX = "/v1/uploads"
MAX_BUCKETS = 50_000
MAX_CACHED_TOKENS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Buckets of `capacity` tokens refilled at `per_minute / 60` tokens per second."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token of `key`: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._evict_full(now)
                bucket = self._buckets[key] = _Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _evict_full(self, now: float) -> None:
        """Forget buckets that have refilled completely: they carry no information."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.capacity
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: drop the oldest-touched ones
            for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1].updated)[
                : MAX_BUCKETS // 10
            ]:
                del self._buckets[k]


# Refill, spend and remember the outcome in one statement: concurrent takes of one bucket queue
# on its row lock, so no two processes can spend the same token. Every SET expression reads
# the row as it was before this update.
_LEVEL = "least(:cap, b.tokens + greatest(0.0, :now - b.updated) * :rate)"
_TAKE_SQL = f"""
INSERT INTO rate_limit_buckets AS b (bucket, tokens, updated, allowed)
VALUES (:bucket, :cap - 1.0, :now, true)
ON CONFLICT (bucket) DO UPDATE SET
    tokens = {_LEVEL} - CASE WHEN {_LEVEL} >= 1.0 THEN 1.0 ELSE 0.0 END,
    updated = greatest(b.updated, :now),
    allowed = {_LEVEL} >= 1.0
RETURNING allowed, tokens
"""
# A bucket untouched for a full refill period is full: it carries no information.
_PRUNE_SQL = "DELETE FROM rate_limit_buckets WHERE updated < :before"
PRUNE_EVERY_S = 60.0


class SharedTokenBuckets:
    """`TokenBuckets` kept in the database (PostgreSQL): the same refill and spend rule, one
    row per (budget, key), so every process of the registry spends from the same bucket.

    Times are this host's Unix clock (`clock`); the API processes of one registry run on one
    host, or on hosts whose clocks NTP keeps within a small part of a second (a clock behind
    only delays a refill: `updated` never moves backwards)."""

    def __init__(
        self,
        engine: Engine,
        per_minute: int,
        budget: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.budget = budget
        self.clock = clock
        self._pruned = 0.0

    def take(self, key: str) -> float:
        """Spend one token of `key`: 0.0 if allowed, else the seconds until one is available.
        Blocking (a database round trip): call it from a worker thread."""
        now = self.clock()
        params = {"bucket": f"{self.budget}:{key}"[:200], "cap": self.capacity}
        with self.engine.begin() as conn:
            allowed, tokens = conn.execute(
                text(_TAKE_SQL), {**params, "now": now, "rate": self.rate}
            ).one()
            if now - self._pruned > PRUNE_EVERY_S:
                self._pruned = now
                conn.execute(text(_PRUNE_SQL), {"before": now - self.capacity / self.rate})
        if allowed:
            return 0.0
        return (1.0 - float(tokens)) / self.rate


Buckets = TokenBuckets | SharedTokenBuckets


class TokenOwners:
    """Bearer token → key fingerprint, cached until the token expires (one PK lookup each)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._cache: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def fingerprint(self, token: str) -> str | None:
        digest = token_digest(token)
        now = datetime.now(UTC)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self.sessions() as session:
            row = session.get(Token, digest)
            if row is None or row.revoked or as_utc(row.expires_at) <= now:
                return None
            fpr, expires = row.fingerprint, as_utc(row.expires_at)
        with self._lock:
            if len(self._cache) >= MAX_CACHED_TOKENS:
                self._cache.clear()
            self._cache[digest] = (fpr, expires)
        return fpr


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return str(token.strip())
    return None


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        buckets: Buckets,
        owners: TokenOwners,
        upload_buckets: Buckets | None = None,
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.owners = owners
        self.upload_buckets = upload_buckets or buckets

    def buckets_for(self, path: str) -> Buckets:
        if path == UPLOAD_PREFIX or path.startswith(UPLOAD_PREFIX + "/"):
            return self.upload_buckets
        return self.buckets

    def key(self, scope: Scope) -> str:
        token = _bearer(scope)
        if token is not None:
            fpr = self.owners.fingerprint(token)
            if fpr is not None:
                return "key:" + fpr
        client = scope.get("client")
        return "ip:" + (client[0] if client else "unknown")

    def _take_shared(self, buckets: SharedTokenBuckets, scope: Scope) -> float:
        return buckets.take(self.key(scope))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        buckets = self.buckets_for(scope["path"])
        if isinstance(buckets, SharedTokenBuckets):  # database round trips: off the loop
            wait = await anyio.to_thread.run_sync(self._take_shared, buckets, scope)
        else:
            wait = buckets.take(self.key(scope))
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        body = json.dumps(
            {
                "error": {
                    "code": "rate_limited",
                    "message": f"Too many requests; retry in {retry_after} s.",
                    "details": {"retryAfter": retry_after},
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, settings: RegistrySettings) -> None:
    """Add the limiter to `app` (called by create_app); rate_limit_per_minute <= 0 disables it.

    The upload budget is never below the general one (a raised --rate-limit raises both).
    On PostgreSQL the buckets are shared by every process of the registry (the database's
    `rate_limit_buckets`); on SQLite, one process, they are kept in memory."""
    if settings.rate_limit_per_minute <= 0:
        return
    upload_per_minute = max(settings.upload_rate_limit_per_minute, settings.rate_limit_per_minute)
    engine: Engine = app.state.engine
    buckets: Buckets
    upload_buckets: Buckets
    if engine.dialect.name == "postgresql":
        buckets = SharedTokenBuckets(engine, settings.rate_limit_per_minute, "api")
        upload_buckets = SharedTokenBuckets(engine, upload_per_minute, "upload")
    else:
        buckets = TokenBuckets(settings.rate_limit_per_minute)
        upload_buckets = TokenBuckets(upload_per_minute)
    app.add_middleware(
        RateLimitMiddleware,
        buckets=buckets,
        owners=TokenOwners(app.state.sessions),
        upload_buckets=upload_buckets,
    )
