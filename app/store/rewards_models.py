"""The local copy of a contributor's usage and rewards, synced from registries.

Everything here is a cache of registry data, keyed by the registry's *key* (one catalogue can
talk to several registries) and, for the ledger, the identity that reads it. A registry key is
the identity the registry names itself by (GET /v1/health `registryId`), never the URL it was
reached at: the same registry at a new address (the demo registry on a new port, a moved
host) keeps its history. `KnownRegistry` and `RegistryAddress` record which URLs each identity
was seen at. Rows synced before identities existed, or from a registry that names none, are
keyed `url:<URL>` until the registry at that URL names itself; they are then re-keyed.

The ledger's per-entry rows (`RewardRecord` here, `LogProof` and `LogLeafEvents` in
app.store.tlog_models), and the ledger rollup per day (app.store.rollups), name their registry
key and owner by a `LedgerScope` id: a first sync stores hundreds of thousands of entries, each
in several rows and indexes, and an integer there instead of the two strings (~175 bytes)
halves what it writes.

It is what the rewards page and `contributor-desk rewards` show, online or not: a sync only
ever adds entries and replaces usage days it fetched again, in one transaction per page, so an
interrupted sync leaves the previous state (and its cursor) intact.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Index,
    Integer,
    ScalarSelect,
    Select,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import InstrumentedAttribute, Mapped, Session, mapped_column

from app.store.models import Base, utcnow

STREAM_REWARDS = "rewards"
URL_KEY_PREFIX = "url:"  # a registry known only by its URL (no identity learned yet)


def url_key(url: str) -> str:
    return URL_KEY_PREFIX + url.rstrip("/")


# Key and sum columns shared by the usage days and the rollups (app.store.rollups).
RegistryKeyCol = Annotated[str, mapped_column(Text, primary_key=True)]
OwnerCol = Annotated[str, mapped_column(String(64), primary_key=True)]  # key fingerprint
ContributionCol = Annotated[str, mapped_column(String(128), primary_key=True)]
DayCol = Annotated[date, mapped_column(Date, primary_key=True)]
ModelCol = Annotated[str, mapped_column(String(64), primary_key=True)]
MethodCol = Annotated[str, mapped_column(String(16), primary_key=True)]
SumCol = Annotated[int, mapped_column(BigInteger, default=0)]


class KnownRegistry(Base):
    """A registry identity this catalogue has talked to (a string the registry named)."""

    __tablename__ = "known_registries"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)  # the embedded demo registry
    unit: Mapped[str | None] = mapped_column(Text, nullable=True)  # name of its reward unit
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RegistryAddress(Base):
    """A URL and the registry key last seen there (`url:<URL>` until the registry named one)."""

    __tablename__ = "registry_addresses"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    registry_key: Mapped[str] = mapped_column(Text, index=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SyncCursor(Base):
    """How far a stream of one registry has been read for one identity."""

    __tablename__ = "sync_cursors"

    registry_key: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)  # key fingerprint
    stream: Mapped[str] = mapped_column(String(200), primary_key=True)  # "rewards", "usage:<id>"
    cursor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerScope(Base):
    """A registry key and an identity reading its ledger, named by `id` in the per-entry rows
    (entries, their inclusions and leaf events). Created by the first sync that stores any."""

    __tablename__ = "ledger_scopes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_key: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(64))  # key fingerprint

    __table_args__ = (UniqueConstraint("registry_key", "owner", name="uq_ledger_scopes"),)


# The scope of `:key` and `:owner` in SQL text (NULL when there is none: matches no row), and
# a `WHERE` matching the scopes of every owner of `:key`.
SCOPE_SQL = "(SELECT id FROM ledger_scopes WHERE registry_key = :key AND owner = :owner)"
SCOPES_OF_KEY = "scope IN (SELECT id FROM ledger_scopes WHERE registry_key = :key)"


def _scope_select(registry_key: str, owner: str) -> Select[int]:
    return select(LedgerScope.id).where(
        LedgerScope.registry_key == registry_key, LedgerScope.owner == owner
    )


def scope_of(registry_key: str, owner: str) -> ScalarSelect[int]:
    """The scope id of this registry key and owner, as a subquery (a query's `scope ==` it
    matches no row when there is none)."""
    return _scope_select(registry_key, owner).scalar_subquery()


def in_scope(
    column: ColumnElement[int] | InstrumentedAttribute[int], registry_key: str, owner: str
) -> ColumnElement[bool]:
    """`column` (a scope id) is the scope of this registry key and owner."""
    return column == scope_of(registry_key, owner)


def scope_id(s: Session, registry_key: str, owner: str) -> int | None:
    """The scope id of this registry key and owner (None: nothing was stored for them)."""
    found = s.scalar(_scope_select(registry_key, owner))
    return None if found is None else int(found)


def ensure_scope(s: Session, registry_key: str, owner: str) -> int:
    """The scope id of this registry key and owner, added in the caller's transaction if there
    is none (a sync commits it before storing rows under it)."""
    found = scope_id(s, registry_key, owner)
    if found is not None:
        return found
    s.execute(
        text(
            "INSERT INTO ledger_scopes (registry_key, owner) VALUES (:key, :owner) "
            "ON CONFLICT (registry_key, owner) DO NOTHING"
        ),
        {"key": registry_key, "owner": owner},
    )
    found = scope_id(s, registry_key, owner)
    assert found is not None
    return found


class RewardRecord(Base):
    """One ledger entry of the registry, as received (local id order == ledger order)."""

    __tablename__ = "reward_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[int] = mapped_column(Integer)  # LedgerScope: registry key and owner
    cursor: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(128))
    contribution_id: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    amount_micro: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("scope", "cursor", name="uq_reward_entries_cursor"),
        Index("ix_reward_entries_contribution", "scope", "contribution_id"),
    )


class UsageDay(Base):
    """One day of one contribution's usage by one model and method (the registry's bucket)."""

    __tablename__ = "usage_days"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree: the key (migration 0013)

    registry_key: Mapped[RegistryKeyCol]
    contribution_id: Mapped[ContributionCol]
    day: Mapped[DayCol]
    model_id: Mapped[ModelCol]
    method: Mapped[MethodCol]
    events: Mapped[SumCol]
    share_ppm: Mapped[SumCol]
    reward_micro: Mapped[SumCol]


class KnownModel(Base):
    """A model registered at a registry (names for the charts; demo models are labelled)."""

    __tablename__ = "registry_models"

    registry_key: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
