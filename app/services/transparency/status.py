"""How far what is stored is verified: what the Rewards page shows next to each figure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from app.services.context import ServiceContext
from app.services.transparency.acceptance import ACCEPTANCE_PREFIX, after_prefix
from app.store.rewards_models import RewardRecord, in_scope
from app.store.rollups import LedgerRollupTotal
from app.store.tlog_models import LogCheckpoint, LogFailure, LogProof, ledger_proofs


@dataclass(frozen=True)
class LogStatus:
    """How far the stored rewards of one registry key and owner are verified."""

    checkpoint_size: int | None  # the latest stored (verified) checkpoint
    checkpoint_at: datetime | None
    verified: int  # entries with a verified inclusion proof
    pending: int  # stored entries without one yet
    # the last failure not acknowledged, if no checkpoint was verified after it
    failure: str | None
    failed_contributions: frozenset[str]  # named by that failure's evidence
    per_contribution: dict[str, tuple[int, int]]  # contribution id → (verified, pending)
    # What that failure checked: "entry", "inclusion", "summary", "usage", "acceptance", ...
    failure_what: str | None = None
    acceptances: frozenset[str] = frozenset()  # contributions whose acceptance leaf verified

    def contribution_state(self, contribution_id: str) -> str:
        """'failed', 'pending' or 'verified' for one contribution's entries."""
        if contribution_id in self.failed_contributions:
            return "failed"
        verified, pending = self.per_contribution.get(contribution_id, (0, 0))
        return "pending" if pending or not verified else "verified"

    def figure_state(self, figure: str, contribution_id: str | None = None) -> str:
        """'failed', 'pending' or 'verified' for a reported figure checked against the
        entries: "summary" (the totals, per contribution and per model) or "usage" (the usage
        series, of one contribution if given). Verified means: it added up to the entries at
        the last sync, as far as they are verified."""
        if self.failure_what == figure and (
            contribution_id is None
            or not self.failed_contributions
            or contribution_id in self.failed_contributions
        ):
            return "failed"
        if self.checkpoint_size is None:
            return "pending"
        if contribution_id is not None:
            return self.contribution_state(contribution_id)
        return "pending" if self.pending else "verified"

    def acceptance_state(self, contribution_id: str) -> str:
        """'failed', 'pending' or 'verified' for the logged acceptance of a contribution."""
        if self.failure_what == "acceptance" and contribution_id in self.failed_contributions:
            return "failed"
        return "verified" if contribution_id in self.acceptances else "pending"


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
            .where(LogFailure.registry_key == registry_key, LogFailure.acknowledged_at.is_(None))
            .order_by(LogFailure.id.desc())
            .limit(1)
        )
        if (
            last is None
            and fail is None
            and not s.scalar(select(exists().where(LogFailure.registry_key == registry_key)))
        ):
            return None
        per = _per_contribution(s, registry_key, owner)
        failure: str | None = None
        failed: set[str] = set()
        if fail is not None and (last is None or _aware(fail.at) >= _aware(last.fetched_at)):
            failure = f"{fail.message} ({fail.what}, {_aware(fail.at):%d %b %Y %H:%M} UTC)"
            evidence = json.loads(fail.evidence)
            reported = evidence.get("reported")
            if isinstance(reported, dict) and isinstance(reported.get("contributionId"), str):
                failed.add(reported["contributionId"])
            if isinstance(evidence.get("contributionId"), str):
                failed.add(evidence["contributionId"])
        accepted = frozenset(
            c.removeprefix(ACCEPTANCE_PREFIX)
            for c in s.scalars(
                select(LogProof.cursor).where(
                    in_scope(LogProof.scope, registry_key, owner),
                    # A range on the primary key's index (LIKE would read every proof row).
                    LogProof.cursor >= ACCEPTANCE_PREFIX,
                    LogProof.cursor < after_prefix(ACCEPTANCE_PREFIX),
                )
            )
        )
        return LogStatus(
            checkpoint_size=None if last is None else last.size,
            checkpoint_at=None if last is None else _aware(last.fetched_at),
            verified=sum(v for v, _ in per.values()),
            pending=sum(p for _, p in per.values()),
            failure=failure,
            failed_contributions=frozenset(failed),
            per_contribution=per,
            failure_what=None if failure is None or fail is None else fail.what,
            acceptances=accepted,
        )


def _per_contribution(s: Session, registry_key: str, owner: str) -> dict[str, tuple[int, int]]:
    """contribution id → (verified, pending) entries. The entries per contribution come from
    the ledger rollup, the verified ones are counted on the proofs' key alone; only when some
    are pending are they looked up, newest first (the entries the log did not hold yet at the
    last sync are the newest), so the usual case reads no row of either table."""
    totals = {
        str(cid): int(n)
        for cid, n in s.execute(
            select(LedgerRollupTotal.contribution_id, func.sum(LedgerRollupTotal.entries))
            .where(LedgerRollupTotal.registry_key == registry_key, LedgerRollupTotal.owner == owner)
            .group_by(LedgerRollupTotal.contribution_id)
        )
    }
    pending = sum(totals.values()) - ledger_proofs(s, registry_key, owner)
    missing: dict[str, int] = {}
    if pending > 0:
        unproven = ~exists().where(
            LogProof.scope == RewardRecord.scope, LogProof.cursor == RewardRecord.cursor
        )
        for cid in s.scalars(
            select(RewardRecord.contribution_id)
            .where(in_scope(RewardRecord.scope, registry_key, owner), unproven)
            .order_by(RewardRecord.id.desc())
            .limit(pending)
        ):
            missing[cid] = missing.get(cid, 0) + 1
    return {cid: (n - missing.get(cid, 0), missing.get(cid, 0)) for cid, n in totals.items()}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
