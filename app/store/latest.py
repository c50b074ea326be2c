"""The latest manifest and signed envelope of an item: the ones submit, sign and the detail
view work from (an item re-added or re-signed keeps its older rows)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import Envelope, ManifestRecord


def latest_manifest(s: Session, item_id: int) -> ManifestRecord | None:
    return s.scalars(
        select(ManifestRecord)
        .where(ManifestRecord.item_id == item_id)
        .order_by(ManifestRecord.id.desc())
    ).first()


def latest_envelope(s: Session, item_id: int) -> Envelope | None:
    return s.scalars(
        select(Envelope).where(Envelope.item_id == item_id).order_by(Envelope.id.desc())
    ).first()
