"""Typed SQLAlchemy 2.0 models of the local catalogue.

Every schema change goes through an Alembic revision in store/migrations/versions.
"""

from __future__ import annotations

from datetime import datetime
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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.store.base import Base as Base
from app.store.base import utcnow as utcnow


class Identity(Base):
    """A contributor key pair. Only the public half lives here; the private key is in the
    OS keyring (or an encrypted key file when no secure keyring exists)."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)  # hex of 32 raw bytes
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # hex sha256(raw pub)
    storage: Mapped[str] = mapped_column(String(32))  # "keyring" | "encrypted-file"
    backend: Mapped[str] = mapped_column(String(200), default="")  # keyring backend name
    key_file: Mapped[str | None] = mapped_column(Text, nullable=True)  # for encrypted-file
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    rotated_from: Mapped[str | None] = mapped_column(String(64), nullable=True)  # fingerprint
    rotation_statement: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Item(Base):
    """A dataset or annotation set in the catalogue (a would-be contribution)."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # domain.states.Kind
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    license: Mapped[str] = mapped_column(String(64), default="")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL"), nullable=True
    )
    parent_registry_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source_path: Mapped[str] = mapped_column(Text)  # absolute path of the root folder
    source_names: Mapped[list[Any]] = mapped_column(JSON, default=list)  # added top-level names
    format: Mapped[str] = mapped_column(String(64), default="unknown")
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # DetectionReport dict
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)  # scan/hash problems
    record_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest_root: Mapped[str] = mapped_column(String(64), default="")
    manifest_digest: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="draft")  # domain.states.State
    registry_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    registry_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    datanet: Mapped[str | None] = mapped_column(String(128), nullable=True)
    rejection_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)  # the owner's, if any
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    parent: Mapped[Item | None] = relationship(remote_side="Item.id")
    files: Mapped[list[FileEntry]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="FileEntry.id"
    )
    history: Mapped[list[HistoryEntry]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="HistoryEntry.id"
    )

    __table_args__ = (
        Index("ix_items_manifest_root", "manifest_root"),
        Index("ix_items_parent", "parent_id"),
        Index("ix_items_updated", "updated_at"),
    )


class FileEntry(Base):
    """One file of an item, as listed in its manifest."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # relative, POSIX, NFC
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)

    item: Mapped[Item] = relationship(back_populates="files")

    __table_args__ = (
        UniqueConstraint("item_id", "path", name="uq_files_item_path"),
        Index("ix_files_sha256", "sha256"),
    )


class ManifestRecord(Base):
    """The canonical manifest bytes of an item, exactly as hashed and signed."""

    __tablename__ = "manifests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    root: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of canonical bytes
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Envelope(Base):
    """A DSSE envelope signing an item's statement (kept: it is the user's proof)."""

    __tablename__ = "envelopes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    keyid: Mapped[str] = mapped_column(String(64))
    registry_url: Mapped[str] = mapped_column(Text)
    datanet: Mapped[str] = mapped_column(String(128), default="")
    manifest_digest: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HistoryEntry(Base):
    """One lifecycle transition or notable event of an item, timestamped."""

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(64))  # "added", "signed", "queued", ...
    detail: Mapped[str] = mapped_column(Text, default="")

    item: Mapped[Item] = relationship(back_populates="history")


class HashCacheEntry(Base):
    """Build-cache of file hashes: reused when size + mtime + inode are unchanged."""

    __tablename__ = "hash_cache"

    abs_path: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


# Tables kept in their own modules, on the same metadata (upload queue, datanets cache).
from app.store import datanet_models, queue_models  # noqa: E402, F401
