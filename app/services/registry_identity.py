"""Which registry is which: a registry's identity, not its URL, keys what we keep of it.

A registry names itself in GET /v1/health (`registryId`: random, made once per database), and
one with a transparency log by its log key (`logKey`, origin+hash+key, pinned on first
contact): then the log key is the identity, and rows kept under its registryId are re-keyed.
The catalogue records every URL an identity was seen at (`RegistryAddress`) and keys its
rewards cache to the identity, so the same registry reached at a new address (the demo
registry on a new port, a moved host) keeps its history, and the GUI and the CLI find the
same rows whatever URL they were started with.

Rows stored before identities existed, or from a registry that names none, are keyed
`url:<URL>`. They are shown as they are until the registry at that URL names itself, and then
re-keyed to its identity in one transaction (`learn`). Rows of an address that is never
reached again (the demo registry's old ports) are re-keyed when a registry proves it knows
them: its ledger, read by the same key, has their random contribution ids (`adopt_by_evidence`).

A `registryId` is not authenticated: a registry that lies about it can only mix its own
answers into the copy kept under the identity it claims; sync still stores only what it
asked for. A log key is: it must be the pinned one, and every checkpoint must be signed by it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Executable

from app.domain.errors import RegistryUnavailable
from app.registry_client.api import RegistryClient
from app.registry_client.http import UNREADABLE
from app.services.context import ServiceContext
from app.store import rollups
from app.store.models import Item
from app.store.rewards_models import (
    URL_KEY_PREFIX,
    KnownModel,
    KnownRegistry,
    LedgerScope,
    RegistryAddress,
    RewardRecord,
    SyncCursor,
    UsageDay,
    ensure_scope,
    url_key,
)
from app.store.rollups import LedgerRollupTotal, ledger_contributions

# Printable ASCII without spaces: random ids today, "origin+key" strings later.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:/+=@-]{0,255}")
_UNIT = re.compile(r"[A-Za-z][A-Za-z .-]{0,23}")
MAX_READS = 32  # names read from a health answer's `reads`
DEFAULT_UNIT = "units"  # a registry that does not name its unit


def parse_unit(body: dict[str, object]) -> str | None:
    """The name of the registry's reward unit (shown next to amounts), None if it names none."""
    value = body.get("unit")
    if value is None:
        return None
    if not isinstance(value, str) or not _UNIT.fullmatch(value):
        raise RegistryUnavailable(UNREADABLE, hint="field 'unit' is not a unit name")
    return value.strip()


def parse_reads(body: dict[str, object]) -> frozenset[str]:
    """The optional reads a health answer names (`reads`: a list of names; anything else names
    none, and the client keeps to the reads every registry serves)."""
    value = body.get("reads")
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value[:MAX_READS] if isinstance(v, str) and len(v) <= 64)


def parse_identity(body: dict[str, object]) -> str | None:
    """The identity a health answer names (None: the registry names none), or a clear error."""
    value = body.get("registryId")
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not _IDENTITY.fullmatch(value)
        or value.startswith(URL_KEY_PREFIX)
    ):
        raise RegistryUnavailable(UNREADABLE, hint="field 'registryId' is not a registry identity")
    return value


class RegistryDirectory:
    """The registries this catalogue has seen, by identity, with the URLs they were seen at."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    # -- reading (no network) ------------------------------------------------------------------

    def key_for(self, url: str) -> str | None:
        """The key of what is stored for the registry at `url`, None if it was never seen."""
        with self._ctx.db.session() as s:
            row = s.get(RegistryAddress, url.rstrip("/"))
            return row.registry_key if row is not None else None

    def demo_key(self) -> str | None:
        """The embedded demo registry's key (the one seen last), None if it was never synced."""
        with self._ctx.db.session() as s:
            return s.scalar(
                select(KnownRegistry.key)
                .where(KnownRegistry.demo.is_(True))
                .order_by(KnownRegistry.last_seen.desc())
                .limit(1)
            )

    def addresses(self, s: Session, key: str) -> list[str]:
        urls = list(
            s.scalars(select(RegistryAddress.url).where(RegistryAddress.registry_key == key))
        )
        if key.startswith(URL_KEY_PREFIX) and key[len(URL_KEY_PREFIX) :] not in urls:
            urls.append(key[len(URL_KEY_PREFIX) :])
        return urls

    # -- learning (one request) ----------------------------------------------------------------

    def learn(self, client: RegistryClient, *, demo: bool = False) -> str:
        """Ask the registry at `client` who it is; record the address; re-key rows stored
        under its URL. Returns the key to store and read its data under.

        A registry with a transparency log is known by its log key (origin+hash+key), which
        must be the one pinned for its origin (app.services.transparency); rows stored under
        its `registryId` before are re-keyed to it."""
        from app.services import transparency

        body = client.http.json("GET", "/v1/health", auth=False)
        client.reads = parse_reads(body)
        log_key = transparency.check_pin(self._ctx, body)
        if log_key is not None:
            return self.record(
                client.base_url, log_key.vkey, unit=parse_unit(body), demo=demo,
                formerly=parse_identity(body),
            )  # fmt: skip
        return self.record(client.base_url, parse_identity(body), unit=parse_unit(body), demo=demo)

    def unit_of(self, key: str) -> str:
        with self._ctx.db.session() as s:
            known = s.get(KnownRegistry, key)
            return (known.unit if known is not None else None) or DEFAULT_UNIT

    def record(
        self,
        url: str,
        identity: str | None,
        *,
        unit: str | None = None,
        demo: bool = False,
        formerly: str | None = None,
    ) -> str:
        url = url.rstrip("/")
        key = identity if identity is not None else url_key(url)
        now = datetime.now(UTC)
        with self._ctx.db.session() as s:
            # Upserts: the page and a sync may learn the same registry at the same moment.
            s.execute(
                sqlite_insert(KnownRegistry)
                .values(key=key, demo=demo, unit=unit, first_seen=now, last_seen=now)
                .on_conflict_do_update(
                    index_elements=["key"],
                    set_={"last_seen": now, "unit": unit, "demo": KnownRegistry.demo | demo},
                )
            )
            s.execute(
                sqlite_insert(RegistryAddress)
                .values(url=url, registry_key=key, seen_at=now)
                .on_conflict_do_update(
                    index_elements=["url"], set_={"registry_key": key, "seen_at": now}
                )
            )
            if key != url_key(url):
                _rekey(s, url_key(url), key)
            if formerly is not None and formerly != key:
                _rekey(s, formerly, key)  # its registryId, before it named a log key
            s.commit()
        return key

    def adopt_by_evidence(self, key: str, owner: str) -> list[str]:
        """Re-key rows of addresses never reached again whose contributions the registry `key`
        has in its ledger for `owner` (contribution ids are random: the same registry)."""
        adopted: list[str] = []
        with self._ctx.db.session() as s:
            mine = ledger_contributions(s, key, owner)
            if not mine:
                return []
            legacy = set(
                s.scalars(
                    select(LedgerRollupTotal.registry_key)
                    .where(LedgerRollupTotal.registry_key.startswith(URL_KEY_PREFIX))
                    .distinct()
                )
            )
            for old in sorted(legacy):
                if ledger_contributions(s, old, owner) & mine:
                    _rekey(s, old, key)
                    s.execute(
                        update(RegistryAddress)
                        .where(RegistryAddress.registry_key == old)
                        .values(registry_key=key)
                    )
                    adopted.append(old)
            s.commit()
        return adopted

    def item_ids(
        self, s: Session, key: str, contribution_ids: set[str]
    ) -> dict[str, tuple[int, str]]:
        """Catalogue items of the registry `key`: submitted at one of its addresses, or with a
        contribution id it answered with. {registry id: (item id, title)}"""
        urls = self.addresses(s, key)
        rows = s.execute(
            select(Item.id, Item.registry_id, Item.registry_url, Item.title).where(
                Item.registry_id.is_not(None)
            )
        ).all()
        return {
            str(rid): (iid, title)
            for iid, rid, url, title in rows
            if rid in contribution_ids or (url is not None and url.rstrip("/") in urls)
        }


def _rekey(s: Session, old: str, new: str) -> None:
    """Move every row stored under `old` to `new`; rows `new` already has win (they are the
    same registry's data, read again)."""
    if old == new:
        return
    scopes: dict[str, int] = {
        owner: scope
        for owner, scope in s.execute(
            select(LedgerScope.owner, LedgerScope.id).where(LedgerScope.registry_key == old)
        )
    }
    entries = exists().where(RewardRecord.scope.in_(list(scopes.values())))
    if not s.scalar(select(entries)) and not any(
        s.scalar(select(exists().where(table.registry_key == old)))
        for table in (UsageDay, SyncCursor, KnownModel)
    ):
        return  # the usual case at every sync: nothing was ever stored under `old`
    # Ledger entries: one per (owner, cursor) of the registry; each owner's move from the
    # old key's scope to the new key's (their log proofs stay with the old key's log).
    theirs = aliased(RewardRecord)
    moved = 0  # rows deleted or moved: the rollups of both keys follow
    for owner, old_scope in sorted(scopes.items()):
        new_scope = ensure_scope(s, new, owner)
        moved += _changed(
            s,
            delete(RewardRecord).where(
                RewardRecord.scope == old_scope,
                exists().where(theirs.scope == new_scope, theirs.cursor == RewardRecord.cursor),
            ),
        )
        moved += _changed(
            s,
            update(RewardRecord).where(RewardRecord.scope == old_scope).values(scope=new_scope),
        )

    days = {
        (c, d, m, me)
        for c, d, m, me in s.execute(
            select(
                UsageDay.contribution_id, UsageDay.day, UsageDay.model_id, UsageDay.method
            ).where(UsageDay.registry_key == new)
        )
    }
    fetched = {c for c, _d, _m, _me in days}
    # A contribution whose days the new key already has keeps those (fetched later).
    if fetched:
        moved += _changed(
            s,
            delete(UsageDay).where(
                UsageDay.registry_key == old, UsageDay.contribution_id.in_(sorted(fetched))
            ),
        )
    moved += _changed(
        s, update(UsageDay).where(UsageDay.registry_key == old).values(registry_key=new)
    )

    kept = aliased(SyncCursor)
    moved += _changed(
        s,
        delete(SyncCursor).where(
            SyncCursor.registry_key == old,
            exists().where(
                kept.registry_key == new,
                kept.owner == SyncCursor.owner,
                kept.stream == SyncCursor.stream,
            ),
        ),
    )
    moved += _changed(
        s, update(SyncCursor).where(SyncCursor.registry_key == old).values(registry_key=new)
    )

    models = set(s.scalars(select(KnownModel.id).where(KnownModel.registry_key == new)))
    if models:
        s.execute(
            delete(KnownModel).where(
                KnownModel.registry_key == old, KnownModel.id.in_(sorted(models))
            )
        )
    s.execute(update(KnownModel).where(KnownModel.registry_key == old).values(registry_key=new))
    if moved:  # the rollups of both keys, from the rows as they are now
        rollups.rebuild(s, old)
        rollups.rebuild(s, new)


def _changed(s: Session, stmt: Executable) -> int:
    """The rows a DELETE or UPDATE changed."""
    return int(getattr(s.execute(stmt), "rowcount", 0) or 0)


def learn_quietly(ctx: ServiceContext, *, demo: bool = False) -> str | None:
    """One quick question to the registry at ctx's URL (never seen there before: the demo
    registry's new port) so what is kept under its identity shows before the first sync.
    None when it cannot be reached: nothing is known about that address yet."""
    from app.domain.errors import KnownError
    from app.registry_client.http import RetryPolicy, Timeouts
    from app.services.clients import make_client

    client = make_client(
        ctx, retry=RetryPolicy(attempts=1), timeouts=Timeouts(connect=3.0, read=10.0)
    )
    try:
        return RegistryDirectory(ctx).learn(client, demo=demo)
    except KnownError:
        return None
    finally:
        client.close()
