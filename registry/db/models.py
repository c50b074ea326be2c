"""Core registry tables: keys, auth, contributions, blobs, tus uploads, datanets.

Usage, models and the rewards ledger live in registry.db.usage_models (same Base). Every schema
change goes through an Alembic revision in registry/migrations/versions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db.base import Base

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

ROLE_CONTRIBUTOR = "contributor"
ROLE_OPERATOR = "operator"

STATE_SUBMITTED = "submitted"
STATE_ACCEPTED = "accepted"
STATE_REJECTED = "rejected"
STATE_PENDING_REVIEW = "pending-review"  # uploaded and verified; the datanet owner decides


def utcnow() -> datetime:
    return datetime.now(UTC)


class Key(Base):
    """A registered Ed25519 public key. `rotated_to` links a retired key to its successor."""

    __tablename__ = "keys"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default=ROLE_CONTRIBUTOR)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rotated_to: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("keys.fingerprint"), nullable=True
    )
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuthChallenge(Base):
    """A single-use nonce handed out by /v1/auth/challenge."""

    __tablename__ = "auth_challenges"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Token(Base):
    """A bearer token; only its sha256 is stored so a database leak yields no live tokens."""

    __tablename__ = "tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(
        String(64), ForeignKey("keys.fingerprint", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Datanet(Base):
    """A named collection contributions are submitted to, with its acceptance rules."""

    __tablename__ = "datanets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The key that created it (None: made by an operator or a migration); only it may edit.
    owner_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Increases by one on every change of the rules; contributions sign the version they meet.
    rules_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Contribution(Base):
    """One signed submission. `seq` is the monotonic cursor; `id` is the public handle."""

    __tablename__ = "contributions"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    owner_fingerprint: Mapped[str] = mapped_column(String(64), ForeignKey("keys.fingerprint"))
    signer_fingerprint: Mapped[str] = mapped_column(String(64), ForeignKey("keys.fingerprint"))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    envelope_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # Kept for audit, never needed to answer a request: loaded only when read (a 10,000-file
    # manifest is ~1 MB, and every upload batch and finalize loads its contribution row).
    manifest: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    kind: Mapped[str] = mapped_column(String(32))
    datanet: Mapped[str] = mapped_column(String(64), ForeignKey("datanets.id"))
    title: Mapped[str] = mapped_column(String(500))
    license: Mapped[str | None] = mapped_column(String(100), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("contributions.id"), nullable=True
    )
    state: Mapped[str] = mapped_column(String(16), default=STATE_SUBMITTED)
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    file_count: Mapped[int] = mapped_column(Integer)
    total_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The datanet's rules as they were at create (the version the statement signed): finalize
    # judges by these even if the owner changed the rules meanwhile. None: made before 0007.
    rules_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The contributor's declared tables (path -> columns, records) from the format report.
    tables: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_contributions_owner_seq", "owner_fingerprint", "seq"),
        Index("ix_contributions_datanet_state", "datanet", "state"),
    )


class ContributionFile(Base):
    """One file of a contribution's manifest; its content lives in `blobs` by sha256."""

    __tablename__ = "contribution_files"

    contribution_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("contributions.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)


class Blob(Base):
    """A verified blob in the blob store (row written only after the bytes are in place)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Upload(Base):
    """A tus upload. `offset` is persisted only after the bytes before it are fsynced, and
    `claim` is kept for DELETE/purge; the live claim of a PATCH is in the server's memory
    (registry/tus.py), and `offset` here is the durable (fsynced) offset."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    contribution_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("contributions.id", ondelete="CASCADE"), index=True
    )
    owner_fingerprint: Mapped[str] = mapped_column(String(64), ForeignKey("keys.fingerprint"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # "hash_mismatch" when the finished bytes did not match the declared sha256.
    failure: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claim: Mapped[str | None] = mapped_column(String(64), nullable=True)


class BlobPossession(Base):
    """A key that holds a blob's bytes: it uploaded them (batch, or a finished tus upload of a
    contribution that was then finalized) or answered a possession challenge. Only such keys
    may reference the blob in a contribution without sending it (docs/protocol.md)."""

    __tablename__ = "blob_possessions"

    fingerprint: Mapped[str] = mapped_column(
        String(64), ForeignKey("keys.fingerprint"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    how: Mapped[str] = mapped_column(String(16))  # upload | proof | migrated
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PossessionChallenge(Base):
    """The live nonce for proving possession of one blob of one contribution (single use)."""

    __tablename__ = "possession_challenges"

    contribution_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("contributions.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
