"""The events behind a contributor's ledger entries, with their attribution evidence and the
result of checking it against the contributor's own files (app.services.evidence).

`EvidenceFetch` is how far the events of one ledger entry have been read (its usage-log
position) and whether the whole entry was read and its digest checked. `EvidenceEvent` is one
event as the registry reported it (the stored attributions JSON the event digest covers, kept
as received), this entry's attribution's evidence parsed out of it, and the latest status of
the check against the local files. Rows are only added (a status is refreshed by a new check);
events of an entry not read to the end yet are kept with `confirmed` false until the entry's
digest holds over all of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.models import Base, utcnow


class EvidenceFetch(Base):
    __tablename__ = "evidence_fetch"

    registry_key: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(64), primary_key=True)  # the ledger entry id
    after_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fetched: Mapped[int] = mapped_column(BigInteger, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)  # read and digest checked
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvidenceEvent(Base):
    __tablename__ = "evidence_events"

    registry_key: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(64), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contribution_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fee_micro: Mapped[int] = mapped_column(BigInteger)
    weight_ppm: Mapped[int] = mapped_column(BigInteger)
    amount_micro: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    attributions_json: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    span_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32))  # app.services.evidence_check.Status
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_evidence_events_contribution", "registry_key", "owner", "contribution_id"),
    )
