"""Submit: re-check, sign, queue, and (when the registry answers) create the contribution.

Submitting never needs the network: the signed contribution and a "create contribution" job
are committed locally in one transaction with the signed → queued transition. The registry
calls (create, finalize) are the upload package's (app.services.uploads.remote).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, update

from app.domain.errors import (
    BadInputError,
    NotFoundError,
    RegistryUnavailable,
    UsageError,
    VerificationError,
)
from app.domain.states import JobKind, JobState, State
from app.durable import gc_paused
from app.registry_client.api import RegistryClient
from app.services.clients import make_client
from app.services.context import ServiceContext
from app.services.datanets import DatanetService
from app.services.history import transition
from app.services.identity import PassphraseFn
from app.services.recheck import catalogued_files, changed_message, check_files
from app.services.signing import (
    DEFAULT_DATANET,
    SigningService,
    cached_rules_version,
    datanet_for,
)
from app.services.uploads.remote import SubmitResult, create_remote
from app.signing import dsse
from app.signing.statement import normalise_registry, parse_statement
from app.store.latest import latest_envelope
from app.store.models import FileEntry, Item
from app.store.queue_models import UploadJob

__all__ = ["DEFAULT_DATANET", "SubmitResult", "SubmitService"]

LOCAL_STATES = frozenset({State.DRAFT, State.SIGNED, State.REJECTED})
SHOWN = 10
log = logging.getLogger(__name__)


def _signed_rules_version(envelope: dict[str, Any]) -> int | None:
    try:
        return parse_statement(dsse.Envelope.from_dict(envelope).payload).predicate.rules_version
    except VerificationError:
        return None


class SubmitService:
    """`submit ID`: the same for CLI and GUI; the upload itself is UploadQueue's job."""

    def __init__(self, ctx: ServiceContext, signing: SigningService | None = None) -> None:
        self._ctx = ctx
        self._signing = signing or SigningService(ctx)

    def prepare(
        self,
        item_id: int,
        *,
        datanet: str | None = None,
        registry_url: str | None = None,
        passphrase: str | PassphraseFn | None = None,
    ) -> None:
        """Re-check files, sign if needed, and queue locally (no network)."""
        url = normalise_registry(registry_url or self._ctx.registry_url)
        net = self._datanet(datanet)
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise NotFoundError(
                    f"there is no item #{item_id} in the catalogue",
                    hint="see `contributor-desk list`",
                )
            state = State(item.state)
            if state not in LOCAL_STATES:
                raise UsageError(
                    f"item #{item_id} is already {state.value}",
                    hint="see `contributor-desk queue`" if state is not State.ACCEPTED else None,
                )
            changed, touched = check_files(item.source_path, catalogued_files(s, item_id))
            if touched:
                s.execute(
                    update(FileEntry),
                    [{"id": fid, "mtime_ns": m} for fid, m in touched.items()],
                )
            if changed:
                raise BadInputError(
                    changed_message(item_id, changed),
                    hint="restore the files, or add the folder again as a new item",
                )
            env = latest_envelope(s, item.id)
            fresh = (
                state is State.SIGNED
                and env is not None
                and normalise_registry(env.registry_url) == url
                and env.datanet == net
                and env.manifest_digest == item.manifest_digest
                and (_signed_rules_version(env.envelope) or 1)
                == (cached_rules_version(self._ctx, url, net) or 1)
            )
        if not fresh:
            self._signing.sign_item(item_id, registry_url=url, datanet=net, passphrase=passphrase)
        with self._ctx.db.session() as s:
            item = s.get_one(Item, item_id)
            item.registry_id = None
            item.rejection_reasons = []
            s.execute(delete(UploadJob).where(UploadJob.item_id == item_id))
            s.add(UploadJob(item_id=item_id, kind=JobKind.CREATE, state=JobState.PENDING))
            transition(s, item, State.QUEUED, "queued", f"for {url} datanet {net}")

    def _datanet(self, datanet: str | None) -> str:
        return datanet_for(self._ctx, datanet)

    def check_datanet(self, item_id: int, datanet: str | None, client: RegistryClient) -> None:
        """Before anything is signed: the datanet's rules, evaluated here exactly as the
        registry will (app.services.datanets, app.domain.datanet_rules). Broken rules raise
        BadInputError listing them all, each with its rule and file; a registry that cannot be
        reached leaves the check to the cached rules (none cached: to the registry, and the
        queue reports a rejection)."""
        net = self._datanet(datanet)
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None or State(item.state) not in LOCAL_STATES:
                return  # prepare() explains why it will not submit, with a hint
        check = DatanetService(self._ctx).check_item(item_id, net, client)
        if check.note:
            log.info("datanet %s: %s", net, check.note)
        if check.problems:
            shown = list(check.texts)
            more = f" and {len(shown) - SHOWN} more" if len(shown) > SHOWN else ""
            raise BadInputError(
                f"item #{item_id} would be rejected by datanet {net!r}: "
                f"{'; '.join(shown[:SHOWN])}{more}",
                hint="nothing was signed or sent; change the item or choose another datanet",
            )

    def submit(
        self,
        item_id: int,
        *,
        datanet: str | None = None,
        passphrase: str | PassphraseFn | None = None,
        client: RegistryClient | None = None,
    ) -> SubmitResult:
        """Queue locally, then try to create at the registry; offline is not an error."""
        own = client is None
        client = client or make_client(self._ctx, passphrase=passphrase)
        try:
            self.check_datanet(item_id, datanet, client)
            # Paused collector: a 10,000-file submit builds ~100,000 small objects (file rows,
            # manifest entries, the missing-blob list) that are never in a reference cycle.
            with gc_paused():
                self.prepare(item_id, datanet=datanet, passphrase=passphrase)
            with gc_paused():
                return create_remote(self._ctx, client, item_id)
        except RegistryUnavailable as exc:
            return SubmitResult(item_id, State.QUEUED, None, 0, 0, True, str(exc))
        finally:
            if own:
                client.close()
