"""The figures a registry reports besides its ledger entries (summary totals per contribution
and per model, usage series), checked against what the stored entries add up to. A figure that
does not add up is a verification failure like a missing entry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app.registry_client.http import ApiRefused
from app.store.rewards_models import RewardRecord

if TYPE_CHECKING:
    from app.services.transparency.sync import LogSync

MAX_SUMMARY_PAGES = 100


def check_summary(sync: LogSync) -> None:
    """The registry's summary (total, per contribution) against the stored entries."""
    with sync.ctx.db.session() as s:
        per = dict(
            s.execute(
                select(RewardRecord.contribution_id, func.sum(RewardRecord.amount_micro))
                .where(
                    RewardRecord.registry_key == sync.registry_key,
                    RewardRecord.owner == sync.owner,
                )
                .group_by(RewardRecord.contribution_id)
            ).all()
        )
    entries_total = sum(int(v) for v in per.values())
    after: str | None = None
    for page in range(MAX_SUMMARY_PAGES):
        params: dict[str, Any] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        try:
            body = sync.client.http.json("GET", "/v1/me/summary", params=params)
        except ApiRefused:
            return  # the registry has no summary for this key
        if page == 0 and body.get("rewardMicro") != entries_total:
            sync.fail(
                "summary",
                f"the registry's total is {body.get('rewardMicro')} micro-units, its ledger "
                f"entries add up to {entries_total}",
                {"checkpoint": sync.note.decode(), "entriesRewardMicro": entries_total,
                 "summaryRewardMicro": body.get("rewardMicro")},
            )  # fmt: skip
        contributions = body.get("contributions") or {}
        for c in contributions.get("items") or []:
            cid, reward = c.get("contributionId"), c.get("rewardMicro")
            if reward != int(per.get(cid, 0)):
                sync.fail(
                    "summary",
                    f"the registry's total for contribution {cid} is {reward} micro-units, "
                    f"its ledger entries add up to {int(per.get(cid, 0))}",
                    {"checkpoint": sync.note.decode(), "contributionId": cid,
                     "summaryRewardMicro": reward},
                )  # fmt: skip
        if not contributions.get("hasMore"):
            return
        after = contributions.get("nextCursor")
