"""Typed settings of one registry instance; passed explicitly, never read from globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RegistrySettings:
    """Everything a registry instance needs; tests build one per server with tmp paths."""

    db_url: str
    blobs_dir: Path
    # JSON bodies above this are refused with 413 before parsing (tus PATCH bodies are exempt).
    max_body_bytes: int = 8 * 1024 * 1024
    token_ttl_s: int = 15 * 60
    challenge_ttl_s: int = 5 * 60
    upload_expiry_s: int = 24 * 60 * 60
    rate_limit_per_minute: int = 600
    # Separate budget for the blob upload routes (/v1/uploads...): a tus upload is 2+ requests,
    # so thousands of medium files need more than the API budget (see registry/ratelimit.py).
    upload_rate_limit_per_minute: int = 6000
    # Largest blob accepted through tus (Tus-Max-Size).
    max_upload_bytes: int = 64 * 1024 * 1024 * 1024
    # The URL contributors sign into their envelopes' predicate.registry; None = request base URL
    # (in-process apps and loopback servers only: `serve` requires it on other addresses).
    public_url: str | None = None
    # Refuse requests whose Host header is not a loopback name (400): what `serve` sets for a
    # loopback server without public_url, so a spoofed Host cannot become the signed URL.
    loopback_hosts_only: bool = False
    # Ed25519 public keys (hex) that are model operators from the start.
    operator_keys: tuple[str, ...] = field(default_factory=tuple)
    # Bench-only plain PUT handler (/v1/bench/put); never enabled in production.
    enable_bench_put: bool = False
    # Run Alembic migrations when the app is created (serve does this; tests too).
    migrate_on_start: bool = True
    # Emit one JSON access-log line per request on the "registry.access" logger.
    access_log: bool = True
    # Part of each usage fee that goes to contributors, in ppm (the rest is the protocol's).
    contributor_share_ppm: int = 700_000
    # Most events accepted in one POST /v1/usage batch (more → 413).
    usage_batch_max: int = 1000
    # Run the settler (registry.settlement) in a thread of this process, woken after each
    # usage batch; False when `contributor-registry settle` runs it on its own.
    settle_in_process: bool = True
    # One of the API processes of `serve --workers N`: the serve process itself has migrated the
    # database, registered the operator keys, released stale upload claims and runs the one
    # settler, so a worker does none of these (settle_in_process is ignored).
    worker_process: bool = False
