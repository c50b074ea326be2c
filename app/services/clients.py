"""Registry clients for a ServiceContext: one factory for every use case that talks to the
registry (submit, upload, sync, rewards, datanets), so they share the context's unlocked key
and session token."""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.registry_client.api import RegistryClient
from app.registry_client.http import RetryPolicy, Timeouts
from app.services.context import ServiceContext
from app.services.identity import PassphraseFn
from app.services.signing import unlock_signer


def make_client(
    ctx: ServiceContext,
    *,
    passphrase: str | PassphraseFn | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    pool_size: int = 8,
) -> RegistryClient:
    """A client for ctx.registry_url that loads the identity key when first needed (once per
    session: the context's SignerCache is shared with signing and submit) and shares its
    session token with the context's other clients (one login for submit + upload)."""
    lock = threading.Lock()
    cached: list[Ed25519PrivateKey] = []

    def signer() -> Ed25519PrivateKey:
        with lock:
            if not cached:
                cached.append(unlock_signer(ctx, passphrase))
            return cached[0]

    return RegistryClient(
        ctx.registry_url,
        signer,
        timeouts=timeouts,
        retry=retry,
        pool_size=pool_size,
        tokens=ctx.tokens,
    )
