"""Catalogue use cases: preview what a drop contains, add it (hash + manifest), list, show.

The GUI and the CLI call exactly these methods. Adding is crash-safe: hashing happens first
(hash-cache rows are committed as they come, which only speeds up a retry), then the item, its
files, its manifest and its first history row are written in ONE transaction.

Test hook: with CONTRIBUTOR_DESK_PAUSE_AT="<point>:<file>" in the environment, `add` stops once
at <point> (`hashing`: inside hash_files; `db-write`: every row written, not committed;
`committed`: after the commit, before returning), writes its pid to <file> and waits until the
file is removed (at most a minute), so a test can kill -9 it there. Unset (always, outside
tests) it costs one environment lookup per point.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import Select, String, func, insert, or_, select, type_coerce

from app.domain.errors import BadInputError, NotFoundError, UsageError
from app.domain.problems import Problem, Severity
from app.domain.states import Kind, State
from app.domain.units import plural
from app.formats.base import DetectionReport
from app.services.catalogue_views import (
    JSON_KEYS,
    ORDER_COLUMNS,
    SUMMARY_COLUMNS,
    FileView,
    HistoryView,
    ImportPreview,
    ImportRequest,
    ItemDetail,
    stored_iso,
)
from app.services.context import ServiceContext
from app.services.history import record_event
from app.services.item_summary import ItemSummary
from app.settings import FOLLOW_SYMLINKS
from app.store.latest import latest_envelope, latest_manifest
from app.store.models import (
    FileEntry,
    HistoryEntry,
    Item,
    ManifestRecord,
)

if TYPE_CHECKING:
    from app.manifest.canonical import Manifest
    from app.manifest.scan import ScanResult

__all__ = [
    "CatalogueService",
    "FileView",
    "HistoryView",
    "ImportPreview",
    "ImportRequest",
    "ItemDetail",
    "ItemSummary",
    "ORDER_COLUMNS",
]

ProgressFn = Callable[[int, int], None]
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])
CancelFn = Callable[[], bool]

ANNOTATION_FORMATS = frozenset({"coco", "voc", "yolo-ultralytics", "yolo-darknet", "label-studio"})
FILES_SHOWN = 1000
PAUSE_ENV = "CONTRIBUTOR_DESK_PAUSE_AT"
_paused: set[str] = set()


def _pause_point(name: str) -> None:
    """Hold `add` at `name` when PAUSE_ENV asks for it (see the module docstring)."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    point, _, path = spec.partition(":")
    if point != name or not path or name in _paused:
        return
    _paused.add(name)
    flag = Path(path)
    flag.write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _suggest_title(paths: Sequence[Path]) -> str:
    first = paths[0]
    name = first.name if first.is_dir() else first.stem
    name = name.replace("_", " ").replace("-", " ").strip() or "Untitled"
    if len(paths) > 1:
        name = f"{name} and {len(paths) - 1} more"
    return name[:1].upper() + name[1:]


def _suggest_kind(report: DetectionReport) -> Kind:
    formats = {p.format for p in report.parts}
    if formats and formats <= ANNOTATION_FORMATS | {"json"} and "images" not in formats:
        has_images = any(
            (p.details.get("imageCount") or p.details.get("images") or 0) for p in report.parts
        )
        if formats & ANNOTATION_FORMATS and not has_images:
            return Kind.ANNOTATION
    return Kind.DATASET


def _blocking(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.ERROR]


def _format_problems(problems: Sequence[Problem], limit: int = 5) -> str:
    lines = [f"{p.path}: {p.message}" if p.path else p.message for p in problems[:limit]]
    more = len(problems) - limit
    if more > 0:
        lines.append(f"… and {more} more")
    return "; ".join(lines)


class CatalogueService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._db = ctx.db

    # -- import -------------------------------------------------------------------------

    def _scan(self, paths: Sequence[Path], cancel: CancelFn | None) -> ScanResult:
        from app.manifest.scan import scan_paths  # import-on-use keeps `list` start-up fast

        if not paths:
            raise UsageError("nothing to add: give at least one file or folder")
        resolved = [Path(os.path.abspath(p)) for p in paths]
        return scan_paths(
            resolved, follow_symlinks=self._ctx.settings.get(FOLLOW_SYMLINKS), cancel=cancel
        )

    def preview(self, paths: Sequence[Path], *, cancel: CancelFn | None = None) -> ImportPreview:
        """Scan and detect formats without hashing: fast enough for a drop overlay."""
        from app.formats import detect

        scan = self._scan(paths, cancel)
        report = detect(scan.root, files=[f.rel_path for f in scan.files], cancel=cancel)
        resolved = [Path(os.path.abspath(p)) for p in paths]
        return ImportPreview(
            root=scan.root,
            paths=resolved,
            file_count=len(scan.files),
            total_size=sum(f.size for f in scan.files),
            report=report,
            problems=list(scan.problems),
            suggested_title=_suggest_title(resolved),
            suggested_kind=_suggest_kind(report),
            usable=bool(scan.files) and not _blocking(scan.problems),
            duplicate_of=self._same_source(scan.root, resolved),
            scan=scan,
        )

    def _same_source(self, root: Path, paths: Sequence[Path]) -> int | None:
        names = sorted(p.name for p in paths)
        with self._db.session() as s:
            rows = s.execute(
                select(Item.id, Item.source_names).where(Item.source_path == str(root))
            ).all()
        for item_id, source_names in rows:
            if sorted(source_names) == names:
                return int(item_id)
        return None

    def add(
        self,
        request: ImportRequest,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> ItemSummary:
        """Catalogue files/folders: scan, detect, hash (parallel, cached), manifest, persist."""
        from app.formats import detect
        from app.manifest.canonical import Manifest, ManifestEntry
        from app.manifest.hashing import hash_files
        from app.store.hashcache import StoreHashCache

        kind = request.kind
        if request.parent_id is not None and request.parent_registry_id is not None:
            raise UsageError("give either a catalogue parent or a registry parent, not both")
        if request.parent_id is not None:
            with self._db.session() as s:
                parent = s.get(Item, request.parent_id)
                if parent is None:
                    raise NotFoundError(f"parent #{request.parent_id} is not in the catalogue")
                if parent.kind != Kind.DATASET:
                    raise UsageError(f"parent #{request.parent_id} is not a dataset")
        preview = request.preview
        if (
            preview is not None
            and preview.scan is not None
            and preview.paths == [Path(os.path.abspath(p)) for p in request.paths]
        ):
            scan, report = preview.scan, preview.report
        else:
            scan, report = self._scan(request.paths, cancel), None
        blocking = _blocking(scan.problems)
        if blocking:
            raise BadInputError(
                f"cannot add: {_format_problems(blocking)}",
                hint="fix or remove these files and add again",
            )
        if not scan.files:
            raise BadInputError("cannot add: no files found")
        if report is None:
            report = detect(scan.root, files=[f.rel_path for f in scan.files], cancel=cancel)

        def cancel_hashing() -> bool:
            _pause_point("hashing")
            return cancel is not None and cancel()

        hashed = hash_files(
            scan.files, cache=StoreHashCache(self._db), progress=progress, cancel=cancel_hashing
        )
        blocking = _blocking(hashed.problems)
        if blocking:
            raise BadInputError(
                f"cannot add: {_format_problems(blocking)}",
                hint="nothing was added; try again when the files are stable and readable",
            )
        manifest = Manifest.from_entries(
            [ManifestEntry(h.scanned.rel_path, h.scanned.size, h.sha256) for h in hashed.entries]
        )
        if kind is None:
            kind = _suggest_kind(report)
        if kind is Kind.DATASET and (request.parent_id or request.parent_registry_id):
            raise UsageError("only annotation sets have a parent dataset (use --kind annotation)")
        resolved = [Path(os.path.abspath(p)) for p in request.paths]
        problems = [*scan.problems, *hashed.problems, *request.extra_problems]
        sizes = {h.scanned.rel_path: h.scanned for h in hashed.entries}
        with self._db.session() as s:
            dup = s.scalar(select(Item.id).where(Item.manifest_root == manifest.root).limit(1))
            if dup is not None:
                raise BadInputError(
                    f"already in the catalogue as #{dup} (same files, same content)",
                    hint=f"see `contributor-desk show {dup}`",
                )
            item = Item(
                kind=kind.value,
                title=(request.title or _suggest_title(resolved)).strip(),
                license=request.license,
                parent_id=request.parent_id,
                parent_registry_id=request.parent_registry_id,
                source_path=str(scan.root),
                source_names=sorted(p.name for p in resolved),
                format=report.primary_format,
                report=report.to_dict(),
                problems=[p.to_dict() for p in problems],
                record_count=report.record_count,
                file_count=manifest.file_count,
                total_size=manifest.total_size,
                manifest_root=manifest.root,
                manifest_digest=manifest.digest(),
                state=State.DRAFT.value,
            )
            s.add(item)
            s.flush()
            if manifest.files:
                s.execute(
                    insert(FileEntry),
                    [
                        {
                            "item_id": item.id,
                            "path": e.path,
                            "size": e.size,
                            "sha256": e.sha256,
                            "mtime_ns": sizes[e.path].mtime_ns,
                        }
                        for e in manifest.files
                    ],
                )
            s.add(
                ManifestRecord(
                    item_id=item.id,
                    root=manifest.root,
                    digest=manifest.digest(),
                    canonical=manifest.canonical_bytes(),
                )
            )
            s.add(
                HistoryEntry(
                    item_id=item.id,
                    from_state=None,
                    to_state=State.DRAFT.value,
                    event="added",
                    detail=f"{plural(manifest.file_count, 'file')}, {report.primary_format}",
                )
            )
            s.flush()
            summary = ItemSummary.of(item)
            _pause_point("db-write")
        _pause_point("committed")
        return summary

    # -- reads --------------------------------------------------------------------------

    def _filtered(self, stmt: SelectT, search: str, kind: Kind | None) -> SelectT:
        if search:
            like = f"%{search.strip()}%"
            stmt = stmt.where(
                or_(Item.title.ilike(like), Item.format.ilike(like), Item.license.ilike(like))
            )
        if kind is not None:
            stmt = stmt.where(Item.kind == kind.value)
        return stmt

    def count(self, *, search: str = "", kind: Kind | None = None) -> int:
        with self._db.session() as s:
            return int(s.scalar(self._filtered(select(func.count(Item.id)), search, kind)) or 0)

    def list_items(
        self,
        *,
        search: str = "",
        kind: Kind | None = None,
        offset: int = 0,
        limit: int | None = None,
        order_by: str = "id",
        descending: bool = False,
    ) -> list[ItemSummary]:
        column = ORDER_COLUMNS.get(order_by)
        if column is None:
            raise UsageError(f"cannot sort by {order_by!r}")
        order = column.desc() if descending else column.asc()
        # Plain column rows, not ORM objects: listing 100k items stays well under a second.
        stmt = self._filtered(select(*SUMMARY_COLUMNS), search, kind).order_by(order, Item.id)
        stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._db.session() as s:
            return [ItemSummary.of_row(row) for row in s.execute(stmt)]

    def list_json(self, *, search: str = "", kind: Kind | None = None) -> list[dict[str, Any]]:
        """`list --json` for scripts: the same fields as ItemSummary.to_json, built straight
        from rows (no dataclasses, enums or datetime parsing) so 100k items list quickly."""
        columns = [
            type_coerce(c, String).label(c.key) if c.key in ("created_at", "updated_at") else c
            for c in SUMMARY_COLUMNS
        ]
        stmt = self._filtered(select(*columns), search, kind).order_by(Item.id)
        keys = JSON_KEYS
        with self._db.session() as s:
            rows = s.execute(stmt).all()
        out = [dict(zip(keys, row, strict=True)) for row in rows]
        for d in out:
            d["createdAt"] = stored_iso(d["createdAt"])
            d["updatedAt"] = stored_iso(d["updatedAt"])
        return out

    def _item(self, s: Any, item_id: int) -> Item:
        item = s.get(Item, item_id)
        if item is None:
            raise NotFoundError(
                f"no item #{item_id} in the catalogue", hint="see `contributor-desk list`"
            )
        assert isinstance(item, Item)
        return item

    def get(self, item_id: int) -> ItemDetail:
        with self._db.session() as s:
            item = self._item(s, item_id)
            files = s.scalars(
                select(FileEntry)
                .where(FileEntry.item_id == item_id)
                .order_by(FileEntry.id)
                .limit(FILES_SHOWN)
            ).all()
            envelope = latest_envelope(s, item_id)
            return ItemDetail(
                summary=ItemSummary.of(item),
                source_path=Path(item.source_path),
                report=DetectionReport.from_dict(item.report or {}),
                problems=[Problem.from_dict(p) for p in item.problems or []],
                files=[FileView(f.path, f.size, f.sha256) for f in files],
                history=[self._history_view(h) for h in item.history],
                envelope=envelope.envelope if envelope else None,
                signed_by=envelope.keyid if envelope else None,
                registry_id=item.registry_id,
                registry_url=item.registry_url,
                datanet=item.datanet,
                rejection_reasons=list(item.rejection_reasons or []),
                description=item.description or "",
            )

    @staticmethod
    def _history_view(h: HistoryEntry) -> HistoryView:
        return HistoryView(h.item_id, h.at, h.from_state, h.to_state, h.event, h.detail)

    def history(self, item_id: int | None = None, *, limit: int = 1000) -> list[HistoryView]:
        with self._db.session() as s:
            stmt = select(HistoryEntry).order_by(HistoryEntry.at.desc(), HistoryEntry.id.desc())
            if item_id is not None:
                self._item(s, item_id)
                stmt = stmt.where(HistoryEntry.item_id == item_id)
            return [self._history_view(h) for h in s.scalars(stmt.limit(limit))]

    def manifest(self, item_id: int) -> Manifest:
        from app.manifest.canonical import Manifest

        with self._db.session() as s:
            self._item(s, item_id)
            rec = latest_manifest(s, item_id)
            if rec is None:
                raise NotFoundError(f"item #{item_id} has no manifest")
            return Manifest.parse(rec.canonical)

    def remove(self, item_id: int) -> None:
        with self._db.session() as s:
            item = self._item(s, item_id)
            if item.state not in (State.DRAFT.value, State.SIGNED.value, State.REJECTED.value):
                raise UsageError(
                    f"#{item_id} is {item.state} at the registry; it stays in your history"
                )
            s.delete(item)

    # -- exports ------------------------------------------------------------------------

    def export(self, item_id: int, fmt: Literal["croissant", "bagit"], out: Path) -> Path:
        from app.services.exports import export_item

        detail = self.get(item_id)
        manifest = self.manifest(item_id)
        path = export_item(detail, manifest, fmt, out)
        with self._db.session() as s:
            record_event(s, self._item(s, item_id), "exported", f"{fmt} → {path}")
        return path
