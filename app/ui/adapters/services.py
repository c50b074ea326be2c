"""The services the GUI talks to, built once from the ServiceContext and passed down.

Why a small holder: widgets receive what they need through constructors (no global registry).
Each service is imported and built on first use, so the first paint loads neither the crypto
code (signing, identity) nor the upload queue.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.services.catalogue import CatalogueService
    from app.services.context import ServiceContext
    from app.services.identity import IdentityInfo, IdentityService
    from app.services.signing import SigningService
    from app.ui.adapters.rewards_adapter import GuiRewards
    from app.ui.adapters.upload_adapter import GuiUploadQueue


class Services:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        # Demo mode: simulates usage for accepted contributions before a sync (seed-demo).
        self.demo_seed: Callable[[], None] | None = None

    @cached_property
    def catalogue(self) -> CatalogueService:
        from app.services.catalogue import CatalogueService

        return CatalogueService(self.ctx)

    @cached_property
    def identity(self) -> IdentityService:
        """Building it probes the OS keyring, which can be slow: call from a worker."""
        from app.services.identity import IdentityService

        return IdentityService(self.ctx)

    def current_identity(self) -> IdentityInfo | None:
        """The active IdentityInfo or None; call from a worker (may probe the keyring)."""
        return self.identity.current()

    @cached_property
    def signing(self) -> SigningService:
        from app.services.signing import SigningService

        return SigningService(self.ctx)

    @cached_property
    def uploads(self) -> GuiUploadQueue:
        """The upload queue (building it opens the queue's tables)."""
        from app.ui.adapters.upload_adapter import GuiUploadQueue

        return GuiUploadQueue(self.ctx)

    def started_uploads(self) -> GuiUploadQueue | None:
        """The upload queue if something has built it already, else None (never builds it:
        closing the window or checking for a locked key must not start a queue)."""
        queue: GuiUploadQueue | None = self.__dict__.get("uploads")
        return queue

    @cached_property
    def rewards(self) -> GuiRewards:
        """Usage and rewards sync + offline review."""
        from app.ui.adapters.rewards_adapter import GuiRewards

        return GuiRewards(self.ctx, self._seed_demo, lambda: self.demo_seed is not None)

    def _seed_demo(self) -> None:
        """Read at each sync, so a demo registry attached after first use still counts."""
        if self.demo_seed is not None:
            self.demo_seed()
