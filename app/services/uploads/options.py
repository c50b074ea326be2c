"""The upload queue's settings and limits, its unit of work, and its disk-full guard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy.exc import OperationalError

from app.domain.errors import KnownError
from app.domain.states import State, TaskKind
from app.domain.units import KB
from app.registry_client.http import RetryPolicy, Timeouts
from app.services.context import ServiceContext
from app.settings import UPLOAD_BANDWIDTH_KBPS, UPLOAD_CHUNK_MB, UPLOAD_CONCURRENCY

ACTIVE_ITEM_STATES = (State.QUEUED.value, State.UPLOADING.value)
SMALL_BLOB = 256 * 1024  # blobs up to this size travel in batches, not one tus upload each
BATCH_COUNT = 1000
MAX_CONCURRENCY = 8  # the most parallel uploads the settings offer


class Task(NamedTuple):
    kind: TaskKind
    job_ids: tuple[int, ...]
    item_id: int


class DiskFullError(KnownError):
    """The disk holding the data folder is full: queue state cannot be saved."""


@contextmanager
def disk_guard() -> Iterator[None]:
    """SQLite says 'database or disk is full' → a KnownError; the transaction rolled back."""
    try:
        yield
    except OperationalError as exc:
        text = str(exc.orig or exc).lower()
        if "full" in text or "disk i/o" in text:
            raise DiskFullError(
                "the disk holding your data folder is full; the upload queue was stopped "
                "and nothing was lost",
                hint="free some space, then run `contributor-desk upload` again",
            ) from exc
        raise


@dataclass(frozen=True, slots=True)
class QueueOptions:
    concurrency: int = 2
    chunk_size: int = 16 * 1024 * 1024
    bandwidth_bytes_per_s: int = 0  # 0 = unlimited
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Small-blob batch payload (0 = tus for everything). Each batch costs the registry one
    # syncfs and a few queries, so fewer, larger batches are faster (bench/README.md); the
    # index fits in the 32 MiB limit.
    batch_bytes: int = 24 * 1024 * 1024
    probe_min_s: float = 1.0
    probe_max_s: float = 60.0

    @classmethod
    def from_settings(
        cls,
        ctx: ServiceContext,
        *,
        concurrency: int | None = None,
        chunk_size: int | None = None,
        bandwidth_bytes_per_s: int | None = None,
    ) -> QueueOptions:
        """Options from the user's settings, with explicit overrides (CLI flags, tests)."""
        s = ctx.settings
        return cls(
            concurrency=max(1, concurrency or s.get(UPLOAD_CONCURRENCY)),
            chunk_size=chunk_size or max(1, s.get(UPLOAD_CHUNK_MB)) * 1024 * 1024,
            bandwidth_bytes_per_s=(
                bandwidth_bytes_per_s
                if bandwidth_bytes_per_s is not None
                else bandwidth_from_settings(ctx)
            ),
        )


def bandwidth_from_settings(ctx: ServiceContext) -> int:
    """The user's bandwidth limit in bytes per second (KB/s × 1000, as sizes are shown)."""
    return max(0, ctx.settings.get(UPLOAD_BANDWIDTH_KBPS)) * KB
