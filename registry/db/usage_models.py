"""Usage, attribution and rewards tables: models, events, attributions, ledger, day buckets.

The ledger is append-only (database triggers refuse UPDATE and DELETE) and its `id` is the
contributors' sync cursor. Events (with their attributions) and ledger entries name their model,
contribution and event without foreign keys: they are only ever written by registry.ledger,
which checks models and contributions in the same transaction (neither is ever deleted), and
per-row foreign-key probes cost a large part of the ingestion time on both databases (see
migration 0002 for the other choices made for ingestion speed).
`usage_buckets` is maintained in the same transaction as ingestion so time-series and summary
reads never scan events.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base
from registry.db.models import utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def key_text(length: int) -> String:
    """An id column compared bytewise on PostgreSQL too (`COLLATE "C"`, migration 0003): ids
    are ASCII tokens, and a libc locale would make every B-tree comparison a strcoll()."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


METHOD_INFLUENCE = "influence"
METHOD_EXACT_MATCH = "exact-match"
METHOD_RETRIEVAL = "retrieval"
METHODS = (METHOD_INFLUENCE, METHOD_EXACT_MATCH, METHOD_RETRIEVAL)

KIND_CONTRIBUTOR = "contributor"
KIND_PROTOCOL = "protocol"


class Model(Base):
    """A model registered by an operator; usage events name it by `id`."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    operator_fingerprint: Mapped[str] = mapped_column(String(64), ForeignKey("keys.fingerprint"))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageEvent(Base):
    """One inference event; `event_id` is the operator's idempotency key.

    Its attributions (weight in ppm, relative within the event) are a column, not rows of their
    own: nothing reads them by contribution, and three more rows per event cost a third of the
    ingestion time (migration 0003). `attribution_list()` reads them back.
    """

    __tablename__ = "usage_events"

    event_id: Mapped[str] = mapped_column(key_text(128), primary_key=True)
    model_id: Mapped[str] = mapped_column(key_text(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fee_micro: Mapped[int] = mapped_column(BigInteger)
    operator_fingerprint: Mapped[str] = mapped_column(String(64))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # JSON array of [contributionId, weightPpm, method] or, with evidence,
    # [contributionId, weightPpm, method, {evidence}], in the order the operator sent them.
    attributions: Mapped[str] = mapped_column(Text, server_default="[]")
    # Position in the append-only usage log: given at intake, increasing in commit order;
    # events up to SettlementState.settled_seq are in the ledger (registry.settlement).
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    def attribution_list(self) -> list[tuple[str, int, str]]:
        """[(contribution id, weight in ppm, method)], in the order the operator sent them
        (without the evidence some carry as a 4th element)."""
        return [(str(c), int(w), str(m)) for c, w, m, *_ in json.loads(self.attributions)]

    __table_args__ = (
        CheckConstraint("fee_micro >= 0", name="ck_usage_events_fee"),
        Index("ux_usage_events_seq", "seq", unique=True),
        # an aggregated ledger entry's events: one model in a usage-log range, one day (0013)
        Index("ix_usage_events_model_seq", "model_id", "seq", "at"),
        {"sqlite_with_rowid": False},
    )


class LedgerEntry(Base):
    """One append-only credit, written by settlement (registry.settlement).

    A contributor entry holds the exact sum of one settlement chunk's splits for one
    (contribution, model, method, day): `events` of them, `digest` commits to the sorted
    (event digest, amount) pairs, and the chunk is the usage-log range (seq_from, seq_to];
    `at` is the day's start and `event_id` names the entry ("s<seq_to>"). A protocol entry
    holds the rest of the chunk's fees for one model (`at` is when it was settled). Entries
    written before settlement existed have one event each and no range."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(key_text(128), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    contribution_id: Mapped[str | None] = mapped_column(key_text(40), nullable=True)
    owner_fingerprint: Mapped[str | None] = mapped_column(key_text(64), nullable=True)
    model_id: Mapped[str] = mapped_column(key_text(64))
    method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    amount_micro: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    events: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seq_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seq_to: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    share_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)  # contributors' share

    __table_args__ = (
        CheckConstraint("amount_micro >= 0", name="ck_ledger_amount"),
        CheckConstraint("kind IN ('contributor', 'protocol')", name="ck_ledger_kind"),
        CheckConstraint(
            "kind = 'protocol' OR event_id IS NOT NULL", name="ck_ledger_contributor_event"
        ),
        Index(
            "ix_ledger_owner_id",
            "owner_fingerprint",
            "id",
            sqlite_where=text("kind = 'contributor'"),
            postgresql_where=text("kind = 'contributor'"),
        ),
    )


class UsageBucket(Base):
    """Per day, model and method totals of one contribution (the time-series source).

    `share_ppm_sum` adds up each event's normalised share (its weights split over 1_000_000
    ppm), so it reads as "effective events" whatever scale operators use for weights.
    """

    __tablename__ = "usage_buckets"

    contribution_id: Mapped[str] = mapped_column(key_text(40), primary_key=True)
    bucket_start: Mapped[date] = mapped_column(Date, primary_key=True)
    model_id: Mapped[str] = mapped_column(key_text(64), primary_key=True)
    method: Mapped[str] = mapped_column(key_text(16), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    share_ppm_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    reward_micro: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = ({"sqlite_with_rowid": False},)


class SettlementState(Base):
    """The settled watermark (one row, id 1): every usage event with seq <= settled_seq is in
    the ledger and the day buckets, and no other is. Advanced in the settlement's own
    transaction, so each event is settled exactly once."""

    __tablename__ = "settlement_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settled_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PaidAttribution(Base):
    """The usage-log positions of the events whose attribution to one contribution by one
    method the settler paid a non-zero amount in one chunk (`chunk`: the chunk's last
    position, the `seq_to` of its entries), packed as ascending little-endian int64
    (registry.settlement.pack_positions). A contributor entry's events are among these
    positions: registry.settlement.entry_events reads one row and the events at those
    positions instead of every event of the chunk's model and day. Written with the entries
    since migration 0015; an entry settled before it has no row and is listed from the
    usage log alone."""

    __tablename__ = "paid_attributions"

    contribution_id: Mapped[str] = mapped_column(key_text(40), primary_key=True)
    method: Mapped[str] = mapped_column(key_text(16), primary_key=True)
    chunk: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    positions: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = ({"sqlite_with_rowid": False},)


class SettlementDrop(Base):
    """An attribution that was valid at intake but not at settlement (its contribution is no
    longer accepted, or its day bucket is full): its amount went to the protocol entry."""

    __tablename__ = "settlement_drops"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contribution_id: Mapped[str] = mapped_column(key_text(40), primary_key=True)
    method: Mapped[str] = mapped_column(key_text(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(40))
