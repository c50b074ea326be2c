"""What the app keeps of registries' transparency logs (app.services.transparency).

`LogPin` is the log key trusted for a log origin: pinned on first contact or set by the user.
`LogCheckpoint` keeps every verified signed checkpoint (the note exactly as served), per
registry key; `LogTile` the log's hash tiles the app verified (those holding its own leaves,
the tiles above them and the right edge of the tree it verified them at); `LogProof` the
verified inclusion of each stored ledger entry: its leaf bytes and index, and either its
audit path against a stored checkpoint (`proof`) or, when `proof` is empty, the leaf's hash in
the stored level-0 tile at that index; `LogFailure` every verification failure with its
evidence (signed checkpoints and proofs, JSON). Rows are only ever added (a stored tile is only
replaced by a wider version of itself, whose first hashes are the same): a failed verification
never overwrites what was stored before it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Insert,
    Integer,
    LargeBinary,
    String,
    Text,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.store.models import Base, utcnow
from app.store.rewards_models import in_scope


class LogPin(Base):
    __tablename__ = "log_pins"

    origin: Mapped[str] = mapped_column(Text, primary_key=True)
    vkey: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)  # "first-contact" or "user"
    pinned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LogCheckpoint(Base):
    __tablename__ = "log_checkpoints"

    registry_key: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[bytes] = mapped_column(LargeBinary)
    # The consistency proof from the checkpoint stored before this one (size prev_size).
    prev_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    consistency: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LogProof(Base):
    __tablename__ = "log_proofs"

    # LedgerScope (app.store.rewards_models): registry key and owner
    scope: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cursor: Mapped[str] = mapped_column(Text, primary_key=True)  # the ledger entry id
    leaf_index: Mapped[int] = mapped_column(BigInteger)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    proof: Mapped[bytes] = mapped_column(LargeBinary)  # concatenated 32-byte hashes


class LogProofCount(Base):
    """How many ledger entries of an owner have a `LogProof` (acceptance proofs not counted):
    kept by triggers on log_proofs (migration 0011), so every insert and delete counts, and
    read instead of counting the proofs' rows (a sync with nothing new, the log status).
    Per ledger scope since migration 0014."""

    __tablename__ = "log_proof_counts"

    scope: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ledger: Mapped[int] = mapped_column(BigInteger, default=0)


def ledger_proofs(s: Session, registry_key: str, owner: str) -> int:
    """How many of the owner's ledger entries have a stored proof (`LogProofCount`)."""
    count = s.scalar(
        select(LogProofCount.ledger).where(in_scope(LogProofCount.scope, registry_key, owner))
    )
    return int(count or 0)


class LogTile(Base):
    """A verified hash tile (C2SP tlog-tiles): `width` hashes of level `level`, index `idx`,
    verified against the stored checkpoint of size `tree_size`."""

    __tablename__ = "log_tiles"

    registry_key: Mapped[str] = mapped_column(Text, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


def upsert_tiles() -> Insert:
    """Add tiles (rows of LogTile's columns); a stored tile is replaced only by a wider one."""
    stmt = sqlite_insert(LogTile)
    return stmt.on_conflict_do_update(
        index_elements=["registry_key", "level", "idx"],
        set_={"width": stmt.excluded.width, "tree_size": stmt.excluded.tree_size,
              "data": stmt.excluded.data},
        where=stmt.excluded.width > LogTile.width,
    )  # fmt: skip


class LogLeafEvents(Base):
    """The events count a verified ledger leaf commits to, filed by contribution and day (one
    row per verified entry, stored with its `LogProof`): the usage check reads one
    contribution's days as one range instead of every leaf of its entries."""

    __tablename__ = "log_leaf_events"
    __table_args__ = {"sqlite_with_rowid": False}

    scope: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    contribution_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # of the entry's time, UTC
    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(16), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(64), primary_key=True)
    settlement: Mapped[int] = mapped_column(BigInteger)  # figures.settlement_of(event id)
    events: Mapped[int] = mapped_column(BigInteger)


class LogFailure(Base):
    __tablename__ = "log_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registry_key: Mapped[str] = mapped_column(Text, index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    what: Mapped[str] = mapped_column(Text)  # short: "signature", "consistency", "entry", ...
    message: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)  # JSON
    # When the user acknowledged it (`audit --acknowledge`): kept, with its evidence, but no
    # longer failing the audit or shown on the Rewards page.
    acknowledged_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, default=None
    )
