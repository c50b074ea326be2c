"""The persistent upload queue: one row per blob still to send (or per pending registry call).

Rows live in the catalogue database so a crash, a restart or a week offline loses nothing:
the tus upload URL and the bytes the registry confirmed are persisted as they change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.states import JobKind, JobState
from app.store.base import Base, utcnow


class UploadJob(Base):
    """One unit of upload work for one item; `paths` lists every file carrying this blob."""

    __tablename__ = "upload_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default=JobKind.BLOB.value)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    paths: Mapped[list[Any]] = mapped_column(JSON, default=list)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    bytes_confirmed: Mapped[int] = mapped_column(BigInteger, default=0)
    upload_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_upload_jobs_item", "item_id"),
        Index("ix_upload_jobs_state", "state"),
    )
