"""How far what is stored is verified: what the Rewards page shows next to each figure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from app.services.context import ServiceContext
from app.store.rewards_models import RewardRecord
from app.store.tlog_models import LogCheckpoint, LogFailure, LogProof


@dataclass(frozen=True)
class LogStatus:
    """How far the stored rewards of one registry key and owner are verified."""

    checkpoint_size: int | None  # the latest stored (verified) checkpoint
    checkpoint_at: datetime | None
    verified: int  # entries with a verified inclusion proof
    pending: int  # stored entries without one yet
    failure: str | None  # the last failure, if no checkpoint was verified after it
    failed_contributions: frozenset[str]  # named by that failure's evidence
    per_contribution: dict[str, tuple[int, int]]  # contribution id → (verified, pending)

    def contribution_state(self, contribution_id: str) -> str:
        """'failed', 'pending' or 'verified' for one contribution's entries."""
        if contribution_id in self.failed_contributions:
            return "failed"
        verified, pending = self.per_contribution.get(contribution_id, (0, 0))
        return "pending" if pending or not verified else "verified"


def log_status(ctx: ServiceContext, registry_key: str, owner: str) -> LogStatus | None:
    """The verification state of what is stored for `registry_key` (None: that registry has
    no log, so nothing is verified)."""
    with ctx.db.session() as s:
        last = s.scalar(
            select(LogCheckpoint)
            .where(LogCheckpoint.registry_key == registry_key)
            .order_by(LogCheckpoint.size.desc())
            .limit(1)
        )
        fail = s.scalar(
            select(LogFailure)
            .where(LogFailure.registry_key == registry_key)
            .order_by(LogFailure.id.desc())
            .limit(1)
        )
        if last is None and fail is None:
            return None
        rows = s.execute(
            select(RewardRecord.contribution_id, LogProof.cursor)
            .outerjoin(
                LogProof,
                (LogProof.registry_key == RewardRecord.registry_key)
                & (LogProof.owner == RewardRecord.owner)
                & (LogProof.cursor == RewardRecord.cursor),
            )
            .where(RewardRecord.registry_key == registry_key, RewardRecord.owner == owner)
        ).all()
        per: dict[str, list[int]] = {}
        for cid, proven in rows:
            counts = per.setdefault(cid, [0, 0])
            counts[0 if proven is not None else 1] += 1
        failure: str | None = None
        failed: set[str] = set()
        if fail is not None and (last is None or _aware(fail.at) >= _aware(last.fetched_at)):
            failure = f"{fail.message} ({fail.what}, {_aware(fail.at):%d %b %Y %H:%M} UTC)"
            reported = json.loads(fail.evidence).get("reported")
            if isinstance(reported, dict) and isinstance(reported.get("contributionId"), str):
                failed.add(reported["contributionId"])
        return LogStatus(
            checkpoint_size=None if last is None else last.size,
            checkpoint_at=None if last is None else _aware(last.fetched_at),
            verified=sum(v for v, _ in per.values()),
            pending=sum(p for _, p in per.values()),
            failure=failure,
            failed_contributions=frozenset(failed),
            per_contribution={c: (v, p) for c, (v, p) in per.items()},
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
