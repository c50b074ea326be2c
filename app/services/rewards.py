"""Usage and rewards: sync them from the registry into the catalogue, review them offline.

Sync (`RewardsSync.run`) is incremental and interruptible:
- ledger entries are read after the stored cursor, a page at a time; each page and the cursor
  that follows it are written in one transaction, so a crash or a dropped connection keeps
  every page already stored and the next sync continues after it, never storing one twice;
- the day buckets of each accepted contribution are fetched for the last 90 days, or from the
  last day fetched when that is older (at most the registry's 731-day range), and replace the
  local days of that window in one transaction; older days stay, so history the registry no
  longer shows by default is kept;
- model names are refreshed (charts label models by name; demo models are marked).

Review (`RewardsReview`) reads only the catalogue: totals, per contribution, per model, per
method and per day, for the registry and identity in use, so the whole history is there
offline. Money is integer micro-units throughout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.domain.errors import NotFoundError, UsageError
from app.domain.gcpause import gc_paused
from app.registry_client.api import RegistryClient
from app.registry_client.usage import (
    RewardsPage,
    UsageWindow,
    all_models,
    rewards_after,
    usage_window,
)
from app.services.context import ServiceContext
from app.store.models import Item
from app.store.rewards_models import (
    STREAM_REWARDS,
    KnownModel,
    RewardRecord,
    SyncCursor,
    UsageDay,
)

FIRST_WINDOW_DAYS = 90  # what the registry shows by default
MAX_WINDOW_DAYS = 731  # the registry's largest range per request
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class SyncReport:
    new_entries: int
    new_reward_micro: int
    contributions: int
    models: int
    cursor: str | None


def current_owner(ctx: ServiceContext) -> str | None:
    """The fingerprint whose rewards are synced and shown: the active identity's (None
    without one: rewards belong to a key)."""
    from app.services.identity import IdentityService

    info = IdentityService(ctx).current()
    return info.fingerprint if info is not None else None


def _usage_stream(contribution_id: str) -> str:
    return f"usage:{contribution_id}"


class RewardsSync:
    """One sync of usage and rewards for `owner` (a key fingerprint) at `client`'s registry."""

    def __init__(self, ctx: ServiceContext, client: RegistryClient, owner: str) -> None:
        self._ctx = ctx
        self.client = client
        self.registry = client.base_url
        self.owner = owner

    def run(self, progress: ProgressFn | None = None, *, today: date | None = None) -> SyncReport:
        say = progress or (lambda _msg: None)
        say("Models")
        models = self._sync_models()
        say("Rewards")
        entries, amount, cursor = self._sync_rewards(say)
        contributions = self._accepted()
        for n, cid in enumerate(contributions, 1):
            say(f"Usage of contribution {n} of {len(contributions)}")
            self._sync_usage(cid, today or datetime.now(UTC).date())
        return SyncReport(entries, amount, len(contributions), models, cursor)

    # -- parts -----------------------------------------------------------------------------

    def _cursor(self, s: Session, stream: str) -> SyncCursor | None:
        return s.get(SyncCursor, (self.registry, self.owner, stream))

    def _set_cursor(self, s: Session, stream: str, value: str | None) -> None:
        row = self._cursor(s, stream)
        if row is None:
            row = SyncCursor(registry_url=self.registry, owner=self.owner, stream=stream)
            s.add(row)
        row.cursor = value
        row.synced_at = datetime.now(UTC)

    def _sync_models(self) -> int:
        models = list(all_models(self.client))
        with self._ctx.db.session() as s:
            for m in models:
                stmt = sqlite_insert(KnownModel).values(
                    registry_url=self.registry,
                    id=m.id,
                    name=m.name,
                    description=m.description,
                    demo=m.demo,
                )
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["registry_url", "id"],
                        set_={"name": m.name, "description": m.description, "demo": m.demo},
                    )
                )
            s.commit()
        return len(models)

    def _sync_rewards(self, say: ProgressFn) -> tuple[int, int, str | None]:
        with self._ctx.db.session() as s:
            row = self._cursor(s, STREAM_REWARDS)
            cursor = row.cursor if row else None
        new = amount = 0
        while True:
            page = rewards_after(self.client, cursor)
            with gc_paused():
                new_here, amount_here = self._store_page(page, cursor)
            new, amount = new + new_here, amount + amount_here
            if new:
                say(f"Rewards: {new:,} new entries")
            if not page.has_more or page.next_cursor in (None, cursor):
                return new, amount, page.next_cursor or cursor
            cursor = page.next_cursor

    def _store_page(self, page: RewardsPage, after: str | None) -> tuple[int, int]:
        """The page's entries and the cursor after them, in one transaction."""
        with self._ctx.db.session() as s:
            row = self._cursor(s, STREAM_REWARDS)
            if (row.cursor if row else None) != after:  # another sync got here first
                return 0, 0
            if page.items:
                s.execute(
                    sqlite_insert(RewardRecord).on_conflict_do_nothing(
                        index_elements=["registry_url", "owner", "cursor"]
                    ),
                    [
                        {
                            "registry_url": self.registry,
                            "owner": self.owner,
                            "cursor": e.cursor,
                            "event_id": e.event_id,
                            "contribution_id": e.contribution_id,
                            "model_id": e.model_id,
                            "method": e.method,
                            "amount_micro": e.amount_micro,
                            "at": e.at,
                            "demo": e.demo,
                        }
                        for e in page.items
                    ],
                )
            self._set_cursor(s, STREAM_REWARDS, page.next_cursor or after)
            s.commit()
        return len(page.items), sum(e.amount_micro for e in page.items)

    def _accepted(self) -> list[str]:
        with self._ctx.db.session() as s:
            return [
                str(r)
                for r in s.scalars(
                    select(Item.registry_id)
                    .where(
                        Item.registry_url == self.registry,
                        Item.registry_id.is_not(None),
                        Item.state == "accepted",
                    )
                    .order_by(Item.id)
                )
            ]

    def _sync_usage(self, contribution_id: str, today: date) -> None:
        stream = _usage_stream(contribution_id)
        with self._ctx.db.session() as s:
            row = self._cursor(s, stream)
            last = date.fromisoformat(row.cursor) if row and row.cursor else None
        # Always the registry's last 90 days (operators may post late events for recent days),
        # and back to the last day fetched when that is older (a long time offline).
        since = today - timedelta(days=FIRST_WINDOW_DAYS - 1)
        if last is not None:
            since = max(min(last, since), today - timedelta(days=MAX_WINDOW_DAYS - 1))
        window = usage_window(self.client, contribution_id, since=since)
        self._store_window(window)

    def _store_window(self, window: UsageWindow) -> None:
        with self._ctx.db.session() as s:
            s.execute(
                delete(UsageDay).where(
                    UsageDay.registry_url == self.registry,
                    UsageDay.contribution_id == window.contribution_id,
                    UsageDay.day >= window.since,
                    UsageDay.day <= window.until,
                )
            )
            days: dict[tuple[date, str, str], list[int]] = {}
            for p in window.points:
                day = days.setdefault((p.start, p.model_id, p.method), [0, 0, 0])
                day[0] += p.events
                day[1] += p.share_ppm
                day[2] += p.reward_micro
            if days:
                s.execute(
                    sqlite_insert(UsageDay),
                    [
                        {
                            "registry_url": self.registry,
                            "contribution_id": window.contribution_id,
                            "day": d,
                            "model_id": model_id,
                            "method": method,
                            "events": v[0],
                            "share_ppm": v[1],
                            "reward_micro": v[2],
                        }
                        for (d, model_id, method), v in days.items()
                    ],
                )
            self._set_cursor(s, _usage_stream(window.contribution_id), window.until.isoformat())
            s.commit()


# -- offline review --------------------------------------------------------------------------


@dataclass(frozen=True)
class ContributionRewards:
    item_id: int | None  # None: a contribution this catalogue does not hold (another device)
    contribution_id: str
    title: str
    reward_micro: int
    entries: int


@dataclass(frozen=True)
class RewardsOverview:
    registry: str
    owner: str
    total_micro: int
    entries: int
    last_sync: datetime | None
    by_contribution: tuple[ContributionRewards, ...]
    by_model: tuple[tuple[str, str, bool, int], ...]  # (model id, name, demo, micro)
    by_method: tuple[tuple[str, int], ...]
    # (day, events, reward micro) from the usage buckets, oldest first
    daily: tuple[tuple[date, int, int], ...] = field(default=())


class RewardsReview:
    """What the catalogue holds about usage and rewards (no network)."""

    def __init__(self, ctx: ServiceContext, registry: str, owner: str) -> None:
        self._ctx = ctx
        self.registry = registry
        self.owner = owner

    def contribution_of(self, item_id: int) -> str:
        """The registry id of catalogue item `item_id` (for `overview`), or a clear error."""
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise NotFoundError(f"item #{item_id} is not in the catalogue")
            if not item.registry_id or item.registry_url != self.registry:
                raise UsageError(
                    f"item #{item_id} has not been submitted to {self.registry}",
                    hint="submit it first: contributor-desk submit " + str(item_id),
                )
            return item.registry_id

    def overview(self, contribution_id: str | None = None) -> RewardsOverview:
        with self._ctx.db.session() as s:
            mine = (RewardRecord.registry_url == self.registry) & (RewardRecord.owner == self.owner)
            if contribution_id is not None:
                mine = mine & (RewardRecord.contribution_id == contribution_id)
            total, n = s.execute(
                select(func.coalesce(func.sum(RewardRecord.amount_micro), 0), func.count()).where(
                    mine
                )
            ).one()
            per_contribution = s.execute(
                select(
                    RewardRecord.contribution_id,
                    func.sum(RewardRecord.amount_micro),
                    func.count(),
                )
                .where(mine)
                .group_by(RewardRecord.contribution_id)
            ).all()
            items = {
                str(rid): (iid, title)
                for iid, rid, title in s.execute(
                    select(Item.id, Item.registry_id, Item.title).where(
                        Item.registry_url == self.registry, Item.registry_id.is_not(None)
                    )
                )
            }
            names = {
                m.id: (m.name, m.demo)
                for m in s.scalars(
                    select(KnownModel).where(KnownModel.registry_url == self.registry)
                )
            }
            per_model = s.execute(
                select(RewardRecord.model_id, func.sum(RewardRecord.amount_micro))
                .where(mine)
                .group_by(RewardRecord.model_id)
            ).all()
            per_method = s.execute(
                select(RewardRecord.method, func.sum(RewardRecord.amount_micro))
                .where(mine)
                .group_by(RewardRecord.method)
            ).all()
            cursor = s.get(SyncCursor, (self.registry, self.owner, STREAM_REWARDS))
            days = UsageDay.registry_url == self.registry
            if contribution_id is not None:
                days = days & (UsageDay.contribution_id == contribution_id)
            else:
                days = days & UsageDay.contribution_id.in_([str(r) for r in items])
            daily = s.execute(
                select(UsageDay.day, func.sum(UsageDay.events), func.sum(UsageDay.reward_micro))
                .where(days)
                .group_by(UsageDay.day)
                .order_by(UsageDay.day)
            ).all()
        contributions = sorted(
            (
                ContributionRewards(
                    items.get(cid, (None, ""))[0],
                    cid,
                    items.get(cid, (None, ""))[1] or cid,
                    int(micro),
                    int(count),
                )
                for cid, micro, count in per_contribution
            ),
            key=lambda c: (-c.reward_micro, c.title),
        )
        by_model = sorted(
            (
                (mid, names.get(mid, (mid, False))[0], names.get(mid, (mid, False))[1], int(v))
                for mid, v in per_model
            ),
            key=lambda m: (-m[3], m[0]),
        )
        by_method: dict[str, int] = defaultdict(int)
        for method, v in per_method:
            by_method[method] += int(v)
        return RewardsOverview(
            registry=self.registry,
            owner=self.owner,
            total_micro=int(total),
            entries=int(n),
            last_sync=cursor.synced_at if cursor else None,
            by_contribution=tuple(contributions),
            by_model=tuple(by_model),
            by_method=tuple(sorted(by_method.items(), key=lambda m: (-m[1], m[0]))),
            daily=tuple((d, int(e), int(r)) for d, e, r in daily),
        )
