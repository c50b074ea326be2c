"""Checkpoints: the registry's signed tree head, checked against the pinned log key and against
the last one stored (same root at the same size, a consistency proof to a larger size, never a
smaller size), then stored with its consistency proof so `audit` can re-check the chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from sqlalchemy import select

from app.registry_client.api import RegistryClient
from app.services.context import ServiceContext
from app.services.transparency.failures import hashes
from app.store.tlog_models import LogCheckpoint
from app.tlog import Checkpoint, TlogError, Verifier, open_checkpoint, verify_consistency


class FailFn(Protocol):
    def __call__(self, what: str, message: str, evidence: dict[str, Any]) -> NoReturn: ...


def latest_checkpoint(ctx: ServiceContext, registry_key: str) -> LogCheckpoint | None:
    """The largest checkpoint stored for `registry_key` (detached from its session)."""
    with ctx.db.session() as s:
        row = s.scalar(
            select(LogCheckpoint)
            .where(LogCheckpoint.registry_key == registry_key)
            .order_by(LogCheckpoint.size.desc())
            .limit(1)
        )
        if row is not None:
            s.expunge(row)
        return row


def advance_checkpoint(
    ctx: ServiceContext,
    client: RegistryClient,
    registry_key: str,
    verifier: Verifier,
    fail: FailFn,
) -> tuple[Checkpoint, bytes]:
    """Fetch the registry's checkpoint, verify it and its consistency with the last one
    stored, and store it if it is larger. `fail` records a failure and raises."""
    resp = client.http.request("GET", "/v1/log/checkpoint", auth=False)
    note = resp.content
    try:
        cp, _ = open_checkpoint(note, verifier, verifier.name)
    except TlogError as exc:
        fail(
            "signature",
            f"the checkpoint is not signed by the pinned log key: {exc}",
            {"servedCheckpoint": note.decode("utf-8", "replace"), "pinnedKey": verifier.vkey},
        )
    last = latest_checkpoint(ctx, registry_key)
    consistency: list[bytes] = []
    if last is not None:
        old = last.note.decode()
        new = note.decode()
        if cp.size < last.size:
            fail(
                "rollback",
                f"the registry serves a tree of {cp.size} entries after it signed one of "
                f"{last.size}: an old checkpoint replayed or a truncated log",
                {"checkpoints": [old, new]},
            )
        if cp.size == last.size and cp.root != last.root:
            fail(
                "fork",
                f"two different trees of size {cp.size}, both signed by the log key",
                {"checkpoints": [old, new]},
            )
        if cp.size > last.size:
            body = client.http.json(
                "GET",
                "/v1/log/proof/consistency",
                auth=False,
                params={"from": last.size, "to": cp.size},
            )
            try:
                consistency = hashes(body.get("proof"), "consistency proof")
                verify_consistency(last.size, cp.size, last.root, cp.root, consistency)
            except TlogError as exc:
                fail(
                    "consistency",
                    f"the tree of size {cp.size} does not extend the one of size "
                    f"{last.size} stored before: {exc}",
                    {"checkpoints": [old, new], "consistencyProof": body.get("proof")},
                )
    if last is None or cp.size > last.size:
        with ctx.db.session() as s:
            s.add(
                LogCheckpoint(
                    registry_key=registry_key,
                    size=cp.size,
                    root=cp.root,
                    note=note,
                    prev_size=None if last is None else last.size,
                    consistency=b"".join(consistency),
                    fetched_at=datetime.now(UTC),
                )
            )
            s.commit()
    return cp, note
