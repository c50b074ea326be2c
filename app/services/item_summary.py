"""One catalogue item as a list row shows it: plain frozen data without SQLAlchemy, so the
window's first rows (app.services.catalogue_glance) and the catalogue service share it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.domain.states import Kind, State

if TYPE_CHECKING:
    from app.store.models import Item


@dataclass(frozen=True, slots=True)
class ItemSummary:
    id: int
    kind: Kind
    title: str
    format: str
    record_count: int | None
    file_count: int
    total_size: int
    state: State
    license: str
    parent_id: int | None
    parent_registry_id: str | None
    manifest_root: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, item: Item) -> ItemSummary:
        return cls.of_row(item)  # an ORM Item has the same attribute names as a summary row

    @classmethod
    def of_row(cls, row: Any) -> ItemSummary:
        """From a row of SUMMARY_COLUMNS or an Item."""
        return cls(
            row.id,
            Kind(row.kind),
            row.title,
            row.format,
            row.record_count,
            row.file_count,
            row.total_size,
            State(row.state),
            row.license,
            row.parent_id,
            row.parent_registry_id,
            row.manifest_root,
            row.created_at,
            row.updated_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "title": self.title,
            "format": self.format,
            "recordCount": self.record_count,
            "fileCount": self.file_count,
            "totalSize": self.total_size,
            "state": self.state.value,
            "license": self.license,
            "parentId": self.parent_id,
            "parentRegistryId": self.parent_registry_id,
            "manifestRoot": self.manifest_root,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }
