"""The local copy of a registry's datanets: what the picker shows and what the rule check reads
when the registry cannot be reached. Keyed by the registry URL the list came from (the picker
lists the datanets of the registry the app submits to); each refresh replaces the whole list
of that registry in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, utcnow


class CachedDatanet(Base):
    """One datanet as the registry described it at `fetched_at`."""

    __tablename__ = "datanets"

    registry_url: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str | None] = mapped_column(Text, nullable=True)  # key fingerprint
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rules_version: Mapped[int] = mapped_column(Integer, default=1)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
