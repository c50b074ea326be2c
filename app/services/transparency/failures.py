"""Verification failures: recorded with their evidence, never overwriting anything stored, and
exported as JSON that any tlog tool can check."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import select

from app.services.context import ServiceContext
from app.store.tlog_models import LogCheckpoint, LogFailure
from app.tlog import MalformedError, TlogError
from app.tlog.merkle import HASH_SIZE

EVIDENCE_FORMAT = "contributor-desk-log-evidence/1"


class LogVerificationFailed(TlogError):
    """The registry's log does not back what it reports (exit code 4)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise MalformedError(f"{what} is not a base64 string")
    try:
        # what base64.b64decode(..., validate=True) does, without its wrapper (a sync
        # decodes a leaf per entry)
        return binascii.a2b_base64(s.encode("ascii"), strict_mode=True)
    except (ValueError, UnicodeEncodeError):
        raise MalformedError(f"{what} is not base64") from None


def hashes(items: Any, what: str) -> list[bytes]:
    if not isinstance(items, list) or len(items) > 64:
        raise MalformedError(f"{what} is not a list of at most 64 hashes")
    out = [unb64(h, what) for h in items]
    if any(len(h) != HASH_SIZE for h in out):
        raise MalformedError(f"{what} holds a hash that is not 32 bytes")
    return out


def split_hashes(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def record_failure(
    ctx: ServiceContext,
    registry_key: str,
    what: str,
    message: str,
    evidence: dict[str, Any],
    *,
    hint: str | None = None,
) -> NoReturn:
    """Record the failure with its evidence (a new row; nothing else changes) and raise."""
    with ctx.db.session() as s:
        s.add(
            LogFailure(
                registry_key=registry_key,
                at=datetime.now(UTC),
                what=what,
                message=message,
                evidence=json.dumps(evidence, sort_keys=True),
            )
        )
        s.commit()
    raise LogVerificationFailed(
        f"transparency log check failed ({what}): {message}",
        hint=hint
        or "nothing stored was changed; run contributor-desk audit --export FILE "
        "to keep the evidence",
    )


def acknowledge_failures(ctx: ServiceContext) -> int:
    """Mark every recorded failure not acknowledged yet as acknowledged now (the user has seen
    it): it is kept with its evidence, exported as before, and no longer fails `audit` or shows
    on the Rewards page. Returns how many were marked."""
    now = datetime.now(UTC)
    with ctx.db.session() as s:
        rows = list(s.scalars(select(LogFailure).where(LogFailure.acknowledged_at.is_(None))))
        for f in rows:
            f.acknowledged_at = now
        s.commit()
    return len(rows)


def failure_json(f: LogFailure) -> dict[str, Any]:
    """A recorded failure as `audit` and the evidence export write it (without evidence)."""
    ack = f.acknowledged_at
    return {
        "at": f.at.isoformat(),
        "what": f.what,
        "message": f.message,
        "acknowledgedAt": None if ack is None else ack.isoformat(),
    }


def export_evidence(ctx: ServiceContext, path: Path) -> dict[str, Any]:
    """Write the stored checkpoints (signed notes), consistency proofs and every recorded
    failure with its evidence as JSON; what any tlog tool can check."""
    with ctx.db.session() as s:
        logs = []
        for key in sorted(set(s.scalars(select(LogCheckpoint.registry_key).distinct()))):
            cps = list(
                s.scalars(
                    select(LogCheckpoint)
                    .where(LogCheckpoint.registry_key == key)
                    .order_by(LogCheckpoint.size)
                )
            )
            logs.append(
                {
                    "logKey": key,
                    "checkpoints": [
                        {
                            "note": c.note.decode(),
                            "size": c.size,
                            "root": b64(c.root),
                            "consistencyFrom": c.prev_size,
                            "consistencyProof": [b64(h) for h in split_hashes(c.consistency)],
                        }
                        for c in cps
                    ],
                    "failures": [
                        {**failure_json(f), "evidence": json.loads(f.evidence)}
                        for f in s.scalars(select(LogFailure).where(LogFailure.registry_key == key))
                    ],  # fmt: skip
                }
            )
    doc = {"format": EVIDENCE_FORMAT, "exportedAt": datetime.now(UTC).isoformat(), "logs": logs}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return doc
