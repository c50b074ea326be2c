"""The GUI's side of usage and rewards: sync in the background, review from the catalogue.

No widgets here: the main window runs `sync()` and `overview()` on its task runner and hands
the result (a RewardsOverview, or None without an identity) to the Rewards page. The numbers
come from the same service as `contributor-desk rewards` (RewardsReview, found by
`open_review`), keyed by the registry's identity, so the two always agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from pathlib import Path

from app.domain.errors import IdentityError
from app.services.context import ServiceContext
from app.services.evidence import EvidenceReport
from app.services.evidence_review import EvidenceListing
from app.services.evidence_review import listing as evidence_listing
from app.services.evidence_review import resolve as resolve_contribution
from app.services.registry_identity import RegistryDirectory, learn_quietly
from app.services.rewards import (
    RewardsOverview,
    RewardsReview,
    RewardsSync,
    current_owner,
    open_review,
)
from app.services.transparency import (
    LogStatus,
    acknowledge_failures,
    export_evidence,
    log_status,
)
from app.services.usage_history import (
    ContributionTimeline,
    CsvReport,
    UsageData,
    contribution_timeline,
    export_csv,
    usage_data,
)


@dataclass(frozen=True)
class RewardsPageData(RewardsOverview):
    """An overview with the usage buckets its charts draw (same scope)."""

    usage: UsageData | None = None
    log: LogStatus | None = None  # how far the entries are verified against the registry's log


def with_usage(overview: RewardsOverview, usage: UsageData) -> RewardsPageData:
    base = {f.name: getattr(overview, f.name) for f in fields(RewardsOverview)}
    return RewardsPageData(**base, usage=usage)


class GuiRewards:
    def __init__(
        self,
        ctx: ServiceContext,
        demo_seed: Callable[[], None],
        is_demo: Callable[[], bool] = lambda: False,
    ) -> None:
        self._ctx = ctx
        self._demo_seed = demo_seed  # simulates demo usage; a no-op outside demo mode
        self._is_demo = is_demo  # the registry is the embedded demo registry
        self._lock = threading.Lock()
        self._evidence = threading.Lock()  # held while an evidence share runs
        self._pending: RewardsSync | None = None  # continue_evidence

    def sync(self, passphrase: str | None = None) -> RewardsOverview | None:
        """Pull usage and rewards (demo mode first simulates usage for accepted
        contributions, labelled demo), then the overview. `passphrase` unlocks a key kept in
        an encrypted file (signing in needs the key), exactly as the CLI's prompt does."""
        from app.services.clients import make_client

        owner = current_owner(self._ctx)
        if owner is None:
            return None
        self._demo_seed()
        client = make_client(self._ctx, passphrase=passphrase)
        try:
            sync = RewardsSync(self._ctx, client, owner, demo=self._is_demo())
            sync.run()
        except BaseException:
            client.close()
            raise
        self._hand_over(sync)
        return self._page(self._review(owner), None)

    def _hand_over(self, sync: RewardsSync) -> None:
        """The last sync, with its signed-in client, for `continue_evidence` (an earlier one
        never continued is dropped: the next continuation goes on where the last stopped)."""
        with self._lock:
            earlier, self._pending = self._pending, sync
        if earlier is not None:
            earlier.client.close()

    def continue_evidence(self) -> EvidenceReport | None:
        """After the sync's numbers are shown (on a worker): its bounded share of reading and
        checking the events behind the entries (app.services.evidence), continuing where
        the last share stopped. None when there is no sync to continue."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return None
        sync = pending
        try:
            if not self._evidence.acquire(blocking=False):
                return None  # one share at a time: the next sync's continues after it
            try:
                return sync.continue_evidence()
            finally:
                self._evidence.release()
        finally:
            sync.client.close()

    def last_sync(self) -> datetime | None:
        """When the configured registry's copy last synced (no network): the status bar's
        "Last sync" from the start, before the Rewards page is opened."""
        owner = current_owner(self._ctx)
        if owner is None:
            return None
        url = self._ctx.registry_url
        demo = self._is_demo() and RegistryDirectory(self._ctx).key_for(url) is None
        return open_review(self._ctx, owner, url=url, demo=demo).last_sync()

    def overview(self, contribution_id: str | None = None) -> RewardsOverview | None:
        """What the catalogue holds (works offline), for all contributions or one, with the
        usage buckets of its charts."""
        owner = current_owner(self._ctx)
        return None if owner is None else self._page(self._review(owner), contribution_id)

    def export_csv(
        self,
        path: str,
        since: date | None = None,
        until: date | None = None,
        contribution_id: str | None = None,
    ) -> CsvReport:
        """The usage rows of [since, until] as CSV: the same service function (and file) as
        `contributor-desk rewards --csv`."""
        owner = current_owner(self._ctx)
        if owner is None:
            raise IdentityError("no identity yet: rewards belong to your key")
        return export_csv(
            self._review(owner),
            Path(path),
            since=since,
            until=until,
            contribution_id=contribution_id,
        )

    def export_evidence(self, path: str) -> None:
        """The log evidence as JSON: what `contributor-desk audit --export FILE` writes."""
        export_evidence(self._ctx, Path(path))

    def acknowledge_failures(self) -> int:
        """`contributor-desk audit --acknowledge`: the recorded failures marked as seen."""
        return acknowledge_failures(self._ctx)

    def timeline(self, item_id: int) -> ContributionTimeline:
        """Catalogue item `item_id`'s timeline (its usage from this registry's copy when
        there is an identity). No network."""
        owner = current_owner(self._ctx)
        review = self._review(owner) if owner is not None else None
        return contribution_timeline(self._ctx, item_id, review)

    def evidence(self, item_id: int) -> EvidenceListing:
        """The events behind catalogue item `item_id`'s rewards with their evidence, checked
        against the local files now (the same service as `contributor-desk evidence`)."""
        owner = current_owner(self._ctx)
        if owner is None:
            raise IdentityError("no identity yet: rewards and their evidence belong to your key")
        review = self._review(owner)
        iid, cid, title = resolve_contribution(review, str(item_id))
        return evidence_listing(
            self._ctx, review.registry, owner, cid, item_id=iid, title=title,
            shown_as=review.shown_as,
        )  # fmt: skip

    def _page(self, review: RewardsReview, contribution_id: str | None) -> RewardsPageData:
        page = with_usage(review.overview(contribution_id), usage_data(review, contribution_id))
        return replace(page, log=log_status(self._ctx, review.registry, review.owner))

    def _review(self, owner: str) -> RewardsReview:
        url = self._ctx.registry_url
        if RegistryDirectory(self._ctx).key_for(url) is None:
            learn_quietly(self._ctx, demo=self._is_demo())
        return open_review(self._ctx, owner, url=url)
