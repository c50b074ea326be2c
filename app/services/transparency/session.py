"""What the checks of acceptance leaves and reported figures need of a sync in progress
(app.services.transparency.sync.LogSync provides it), so they do not import the sync."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from datetime import date
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    from app.registry_client.api import RegistryClient
    from app.services.context import ServiceContext
    from app.store.tlog_models import LogProof
    from app.tlog import Checkpoint


class UsageDays(Protocol):
    """What the usage checks compare windows with, read ahead for many contributions
    (figures.StoredDays); None where a contribution's days were not read."""

    def rewards(
        self, contribution_id: str, since: date, until: date
    ) -> dict[tuple[Hashable, ...], int] | None: ...

    def events(
        self, contribution_id: str, since: date, until: date
    ) -> dict[tuple[Hashable, ...], int] | None: ...

    def forget(self) -> None: ...


class SyncSession(Protocol):
    ctx: ServiceContext
    client: RegistryClient
    registry_key: str
    owner: str
    scope: int  # their LedgerScope id (app.store.rewards_models)
    checkpoint: Checkpoint | None
    note: bytes
    settled_floor: int | None
    usage_days: UsageDays | None  # the stored days of the windows this sync checks

    def fail(self, what: str, message: str, evidence: dict[str, Any]) -> NoReturn: ...

    def store(self, proofs: Iterable[LogProof]) -> None: ...
