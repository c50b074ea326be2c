"""The GUI's side of usage and rewards: sync in the background, review from the catalogue.

No widgets here: the main window runs `sync()` and `overview()` on its task runner and hands
the result (a RewardsOverview, or None without an identity) to the Rewards page.
"""

from __future__ import annotations

from collections.abc import Callable

from app.services.context import ServiceContext
from app.services.rewards import RewardsOverview


class GuiRewards:
    def __init__(self, ctx: ServiceContext, demo_seed: Callable[[], None] | None = None) -> None:
        self._ctx = ctx
        self.demo_seed = demo_seed

    def _owner(self) -> str | None:
        from app.services.identity import IdentityService

        info = IdentityService(self._ctx).current()
        return info.fingerprint if info is not None else None

    def sync(self) -> RewardsOverview | None:
        """Pull usage and rewards (demo mode first simulates usage for accepted
        contributions, labelled demo), then the overview."""
        from app.services.rewards import RewardsSync
        from app.services.upload_workers import make_client

        owner = self._owner()
        if owner is None:
            return None
        if self.demo_seed is not None:
            self.demo_seed()
        client = make_client(self._ctx)
        try:
            RewardsSync(self._ctx, client, owner).run()
        finally:
            client.close()
        return self.overview()

    def overview(self, contribution_id: str | None = None) -> RewardsOverview | None:
        """What the catalogue holds (works offline), for all contributions or one."""
        from app.services.rewards import RewardsReview

        owner = self._owner()
        if owner is None:
            return None
        return RewardsReview(self._ctx, self._ctx.registry_url, owner).overview(contribution_id)
