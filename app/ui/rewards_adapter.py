"""The GUI's side of usage and rewards: sync in the background, review from the catalogue.

No widgets here: the main window runs `sync()` and `overview()` on its task runner and hands
the result (a RewardsOverview, or None without an identity) to the Rewards page.
"""

from __future__ import annotations

from collections.abc import Callable

from app.services.context import ServiceContext
from app.services.rewards import RewardsOverview, RewardsReview, RewardsSync, current_owner


class GuiRewards:
    def __init__(self, ctx: ServiceContext, demo_seed: Callable[[], None]) -> None:
        self._ctx = ctx
        self._demo_seed = demo_seed  # simulates demo usage; a no-op outside demo mode

    def sync(self, passphrase: str | None = None) -> RewardsOverview | None:
        """Pull usage and rewards (demo mode first simulates usage for accepted
        contributions, labelled demo), then the overview. `passphrase` unlocks a key kept in
        an encrypted file (signing in needs the key), exactly as the CLI's prompt does."""
        from app.services.upload_workers import make_client

        owner = current_owner(self._ctx)
        if owner is None:
            return None
        self._demo_seed()
        client = make_client(self._ctx, passphrase=passphrase)
        try:
            RewardsSync(self._ctx, client, owner).run()
        finally:
            client.close()
        return self._review(owner).overview()

    def overview(self, contribution_id: str | None = None) -> RewardsOverview | None:
        """What the catalogue holds (works offline), for all contributions or one."""
        owner = current_owner(self._ctx)
        return None if owner is None else self._review(owner).overview(contribution_id)

    def _review(self, owner: str) -> RewardsReview:
        return RewardsReview(self._ctx, self._ctx.registry_url, owner)
