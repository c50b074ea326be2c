"""What a datanet owner does from the app: create and edit their datanets, and decide on the
contributions waiting for review. The GUI's "My datanets" page calls these; each is one
registry request (signed in with the user's key), and the datanets cache is refreshed after a
change so the picker shows it at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.domain.datanet_rules import DatanetRules
from app.domain.errors import BadInputError
from app.registry_client.api import RegistryClient
from app.registry_client.api import ReviewEntry as ReviewEntry  # re-exported for app.ui
from app.services.context import ServiceContext
from app.services.datanets import DatanetListing, DatanetService, DatanetView
from app.services.identity import IdentityService

DATANET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
MAX_NOTE = 2000


@dataclass(frozen=True, slots=True)
class DatanetDraft:
    """A datanet as the owner edits it (rules in the registry's JSON form)."""

    id: str
    name: str
    description: str
    rules: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OwnedDatanets:
    mine: tuple[DatanetView, ...]
    offline: bool
    note: str = ""


class DatanetOwnerService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._datanets = DatanetService(ctx)

    def _me(self) -> str | None:
        info = IdentityService(self._ctx).current()
        return info.fingerprint if info is not None else None

    def mine(self, client: RegistryClient) -> OwnedDatanets:
        """The datanets our key owns (offline: from the cache)."""
        listing: DatanetListing = self._datanets.listing(client)
        me = self._me()
        owned = tuple(v for v in listing.items if me is not None and v.owner == me)
        return OwnedDatanets(owned, listing.offline, listing.note)

    def save(self, client: RegistryClient, draft: DatanetDraft, *, new: bool) -> DatanetView:
        """Create (new) or update a datanet; rules the shared evaluator cannot read are
        refused here, before anything is sent."""
        name = " ".join(draft.name.split())
        if new and not DATANET_ID.match(draft.id):
            raise BadInputError(
                f"“{draft.id}” is not a datanet id",
                hint="3-64 lowercase letters, digits and '-', not starting or ending with '-'",
            )
        if not name:
            raise BadInputError("the datanet has no name", hint="give it a short name")
        try:
            rules = DatanetRules.from_json(draft.rules).to_json()
        except ValueError as exc:
            raise BadInputError(f"the rules cannot be used: {exc}") from None
        body = {"name": name, "description": draft.description.strip(), "rules": rules}
        if new:
            info = client.create_datanet({"id": draft.id, **body})
        else:
            info = client.update_datanet(draft.id, body)
        self._datanets.lookup(info.id, client)  # refresh the cache (the picker shows it)
        view = self._datanets.cached_one(info.id)
        assert view is not None
        return view

    def queue(self, client: RegistryClient, datanet: str) -> list[ReviewEntry]:
        return client.review_queue(datanet)

    def decide(
        self, client: RegistryClient, contribution_id: str, *, accept: bool, note: str
    ) -> str:
        note = note.strip()
        if len(note) > MAX_NOTE:
            raise BadInputError(f"the note is {len(note):,} characters long", hint="keep it short")
        if not accept and not note:
            raise BadInputError(
                "a rejection needs a note", hint="tell the contributor what to change"
            )
        return client.review(contribution_id, "accept" if accept else "reject", note)
