"""What the catalogue shows: item summaries and details, file and history rows, and what an
import asks for and previews. Plain frozen data, safe to hand to the GUI's threads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.domain.problems import Problem
from app.domain.states import Kind
from app.formats.base import DetectionReport
from app.services.item_summary import ItemSummary
from app.store.models import Item

if TYPE_CHECKING:
    from app.manifest.scan import ScanResult

ORDER_COLUMNS = {
    "id": Item.id,
    "title": Item.title,
    "kind": Item.kind,
    "format": Item.format,
    "items": Item.record_count,
    "record_count": Item.record_count,
    "size": Item.total_size,
    "total_size": Item.total_size,
    "state": Item.state,
    "updated_at": Item.updated_at,
    "created_at": Item.created_at,
}


SUMMARY_COLUMNS = (
    Item.id,
    Item.kind,
    Item.title,
    Item.format,
    Item.record_count,
    Item.file_count,
    Item.total_size,
    Item.state,
    Item.license,
    Item.parent_id,
    Item.parent_registry_id,
    Item.manifest_root,
    Item.created_at,
    Item.updated_at,
)


JSON_KEYS = (
    "id",
    "kind",
    "title",
    "format",
    "recordCount",
    "fileCount",
    "totalSize",
    "state",
    "license",
    "parentId",
    "parentRegistryId",
    "manifestRoot",
    "createdAt",
    "updatedAt",
)


def stored_iso(stored: str | None) -> str | None:
    """SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC); emit the ISO 8601 form."""
    return None if stored is None else stored.replace(" ", "T", 1)


@dataclass(frozen=True, slots=True)
class FileView:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class HistoryView:
    item_id: int
    at: datetime
    from_state: str | None
    to_state: str
    event: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "itemId": self.item_id,
            "at": self.at.isoformat(),
            "from": self.from_state,
            "to": self.to_state,
            "event": self.event,
            "detail": self.detail,
        }


@dataclass(slots=True)
class ItemDetail:
    summary: ItemSummary
    source_path: Path
    report: DetectionReport
    problems: list[Problem]
    files: list[FileView]
    history: list[HistoryView]
    envelope: dict[str, Any] | None
    signed_by: str | None
    registry_id: str | None
    registry_url: str | None
    datanet: str | None
    rejection_reasons: list[Any]
    description: str = ""  # the contributor's own words; editable while a draft

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "description": self.description,
            "sourcePath": str(self.source_path),
            "report": self.report.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
            "filesShown": len(self.files),
            "history": [h.to_json() for h in self.history],
            "signedBy": self.signed_by,
            "registryId": self.registry_id,
            "registryUrl": self.registry_url,
            "datanet": self.datanet,
            "rejectionReasons": self.rejection_reasons,
        }


@dataclass(slots=True)
class ImportPreview:
    root: Path
    paths: list[Path]
    file_count: int
    total_size: int
    report: DetectionReport
    problems: list[Problem]
    suggested_title: str
    suggested_kind: Kind
    usable: bool
    duplicate_of: int | None = None
    # What the preview found, for `add` to reuse (give the preview in the ImportRequest).
    scan: ScanResult | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class ImportRequest:
    paths: list[Path]
    kind: Kind | None = None
    title: str | None = None
    license: str = ""
    parent_id: int | None = None
    parent_registry_id: str | None = None
    extra_problems: list[Problem] = field(default_factory=list)
    # The preview of these same paths: `add` then neither scans nor detects formats again.
    preview: ImportPreview | None = None
