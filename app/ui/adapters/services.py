"""The services the GUI talks to, built once from the ServiceContext and passed down.

Why a small holder: widgets receive what they need through constructors (no global registry).
Optional services (signing, uploads) are detected at runtime so the GUI can say honestly that a
feature is not available yet instead of faking it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.services.catalogue import CatalogueService
    from app.services.context import ServiceContext
    from app.services.identity import IdentityService

log = logging.getLogger(__name__)


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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
    def identity(self) -> IdentityService | None:
        if not _module_available("app.services.identity"):
            return None
        from app.services.identity import IdentityService

        return IdentityService(self.ctx)

    @property
    def identity_available(self) -> bool:
        """Without constructing it: building it probes the OS keyring, which can be slow."""
        return _module_available("app.services.identity")

    def current_identity(self) -> Any:
        """The active IdentityInfo or None; call from a worker (may probe the keyring)."""
        identity = self.identity
        return None if identity is None else identity.current()

    @property
    def signing_available(self) -> bool:
        """Checked without importing it: the first paint should not load crypto code."""
        return _module_available("app.services.signing")

    @property
    def uploads_available(self) -> bool:
        return _module_available("app.services.uploads") and _module_available(
            "app.services.submit"
        )

    @cached_property
    def signing(self) -> Any | None:
        """SigningService when it can be loaded, else None (actions stay disabled)."""
        return self._optional("app.services.signing", "SigningService")

    @cached_property
    def uploads(self) -> Any | None:
        """The upload queue service, else None (Uploads shows an empty state)."""
        if not self.uploads_available:
            return None
        return self._optional("app.ui.adapters.upload_adapter", "GuiUploadQueue")

    @cached_property
    def rewards(self) -> Any:
        """Usage and rewards sync + offline review (app.ui.adapters.rewards_adapter.GuiRewards)."""
        from app.ui.adapters.rewards_adapter import GuiRewards

        return GuiRewards(self.ctx, self._seed_demo, lambda: self.demo_seed is not None)

    def _seed_demo(self) -> None:
        """Read at each sync, so a demo registry attached after first use still counts."""
        if self.demo_seed is not None:
            self.demo_seed()

    def _optional(self, module: str, cls: str) -> Any | None:
        if not _module_available(module):
            return None
        try:
            factory = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError):
            log.warning("%s.%s is not importable; feature disabled", module, cls, exc_info=True)
            return None
        return factory(self.ctx)
