"""The Catalogue page: search, the lazily loaded table, and the detail pane.

Detail loading, verify and export run in background tasks; reveal opens the folder with the
desktop's file manager.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEvent, QItemSelection, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.domain.units import problem_location
from app.ui.adapters.catalogue_model import (
    COL_FORMAT,
    COL_ITEMS,
    COL_KIND,
    COL_SIZE,
    COL_STATE,
    COL_TITLE,
    COL_UPDATED,
    CatalogueModel,
)
from app.ui.adapters.tasks import TaskRunner
from app.ui.resources import themed_icon
from app.ui.theme import Theme
from app.ui.widgets.common import CatalogueDelegate, EmptyState, GripSplitter, page_header
from app.ui.widgets.detail_pane import DetailPane

if TYPE_CHECKING:
    from app.services.catalogue import ItemDetail
    from app.ui.adapters.services import Services
    from app.ui.errors import ErrorPresenter

log = logging.getLogger(__name__)
SEARCH_DEBOUNCE_MS = 150
GLANCE_ROWS = 200  # the model's first page
WARM_UP_MS = 300  # after the first rows are painted
TITLE_MIN_WIDTH = 240  # the Title column never gets narrower than this
TABLE_MIN_WIDTH = 340
MIN_SECTION = 40  # narrower than this, a column counts as collapsed
# Columns given up, in this order, when the table is too narrow for all of them beside a
# readable Title; they come back when there is room again.
OPTIONAL_COLUMNS = (COL_UPDATED, COL_FORMAT, COL_ITEMS, COL_SIZE)


class CatalogueHeader(QHeaderView):
    """The catalogue's column header: a Title that never collapses, columns that fit.

    Columns are sized from the font (so '12,500' or 'Submitted' always fits); when the table
    is narrow, optional columns are hidden rather than squeezing the Title or adding a
    horizontal scrollbar. A saved layout with a collapsed column is refused on restore and
    never written: the default layout is saved instead."""

    def __init__(self, table: QTableView) -> None:
        super().__init__(Qt.Orientation.Horizontal, table)
        self._table = table
        self._fitting = False
        self.setMinimumSectionSize(MIN_SECTION)
        self.sectionResized.connect(self._section_resized)

    # -- widths --------------------------------------------------------------------------
    def natural_widths(self) -> dict[int, int]:
        """Widths that show the header text and any value of each column unelided."""
        fm = self.fontMetrics()
        cell = self._table.fontMetrics()
        pad = 28  # delegate margins + the sort indicator

        def fit(header: str, *samples: str) -> int:
            return (
                max(fm.horizontalAdvance(header), *(cell.horizontalAdvance(s) for s in samples))
                + pad
            )

        return {
            COL_KIND: fit("Kind", "Annotation set"),
            COL_FORMAT: fit("Format", "yolo-ultralytics"),
            COL_ITEMS: fit("Items", "88,888,888"),
            COL_SIZE: fit("Size", "888.8 MB"),
            COL_STATE: fit("State", "Submitted") + 8,  # the pill's own padding
            COL_UPDATED: fit("Last activity", "88 Mmm 8888", "yesterday"),
        }

    def setup_columns(self) -> None:
        """The default layout: a stretching Title, the other columns at their natural width."""
        self.setSectionHidden(COL_TITLE, False)
        self.setSectionResizeMode(COL_TITLE, QHeaderView.ResizeMode.Stretch)
        for col, width in self.natural_widths().items():
            self.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.resizeSection(col, width)
        self.setSectionHidden(COL_KIND, True)  # kind is the title's icon (and tooltip)

    def minimum_width(self, col: int) -> int:
        """Numbers and state pills are never cut ('600,…'); other columns stay readable."""
        if col == COL_TITLE:
            return TITLE_MIN_WIDTH
        if col in (COL_ITEMS, COL_SIZE, COL_STATE):
            return self.natural_widths()[col]
        return MIN_SECTION

    def _section_resized(self, col: int, _old: int, new: int) -> None:
        if self._fitting or col == COL_TITLE or self.isSectionHidden(col):
            return
        floor = self.minimum_width(col)
        others = sum(
            self.sectionSize(c)
            for c in range(self.count())
            if c not in (col, COL_TITLE) and not self.isSectionHidden(c)
        )
        # Dragged too narrow: back to a readable width; too wide: the Title keeps its
        # minimum (there is no horizontal scrollbar to reach columns pushed out of view).
        ceiling = self._table.viewport().width() - others - TITLE_MIN_WIDTH
        width = max(floor, min(new, ceiling)) if self._table.isVisible() else max(floor, new)
        if width != new:
            self._fitting = True
            try:
                self.resizeSection(col, width)
            finally:
                self._fitting = False

    def fit(self) -> None:
        """Hide optional columns until the Title has TITLE_MIN_WIDTH; show them again when
        there is room."""
        if self._fitting:
            return
        self._fitting = True
        try:
            available = self._table.viewport().width()
            for col in OPTIONAL_COLUMNS:
                self.setSectionHidden(col, False)
            for col in (COL_ITEMS, COL_SIZE, COL_STATE):  # the font may have changed
                self.resizeSection(col, max(self.sectionSize(col), self.minimum_width(col)))

            def others() -> int:
                return sum(
                    self.sectionSize(c)
                    for c in range(self.count())
                    if c != COL_TITLE and not self.isSectionHidden(c)
                )

            for col in OPTIONAL_COLUMNS:
                if available - others() >= TITLE_MIN_WIDTH:
                    break
                self.setSectionHidden(col, True)
        finally:
            self._fitting = False

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Resize:
            self.fit()
        return False

    # -- saved layout --------------------------------------------------------------------
    def layout_ok(self) -> bool:
        """False for a layout with a hidden Title or a collapsed column."""
        if self.count() == 0 or self.isSectionHidden(COL_TITLE):
            return False
        return all(
            self.sectionSize(c) >= MIN_SECTION or self.isSectionHidden(c)
            for c in range(self.count())
            if c != COL_TITLE
        )

    def saveState(self) -> QByteArray:  # noqa: N802 - Qt API
        if self.layout_ok():
            return super().saveState()
        return QByteArray()  # nothing rather than a collapsed layout

    def restoreState(  # noqa: N802 - Qt API
        self, state: QByteArray | bytes | bytearray | memoryview
    ) -> bool:
        before = super().saveState()
        if not state or not super().restoreState(state) or not self.layout_ok():
            super().restoreState(before)
            self.setup_columns()  # a collapsed layout, restored or current, is replaced
            self.fit()
            return False
        self.setSectionResizeMode(COL_TITLE, QHeaderView.ResizeMode.Stretch)
        self.setSectionHidden(COL_KIND, True)
        self.fit()
        return True


class _LazySource:
    """A CatalogueSource that builds the real service on first use.

    The window's very first rows (catalogue order, no search) come from a plain sqlite3
    glance at the database when one can be had: that skips importing SQLAlchemy and the
    service before the user sees anything. Only the first refresh uses it (its count and
    first page); everything after that asks the service."""

    def __init__(self, factory: Any, data_dir: Path | None = None) -> None:
        self._factory = factory
        self._source: Any = None
        self._data_dir = data_dir
        self._pending: Any = None  # the glance, between the first count and first page
        self.glanced = False

    def _get(self) -> Any:
        if self._source is None:
            self._source = self._factory()
        return self._source

    @property
    def built(self) -> bool:
        return self._source is not None

    def count(self, **kw: Any) -> int:
        if not self.glanced and self._source is None and self._data_dir is not None:
            self.glanced = True  # one try, whatever it gives
            if not kw.get("search") and kw.get("kind") is None:
                from app.services.catalogue_glance import first_page

                self._pending = first_page(self._data_dir, GLANCE_ROWS)
                if self._pending is not None:
                    return int(self._pending.total)
        self._pending = None
        return int(self._get().count(**kw))

    def list_items(self, **kw: Any) -> list[Any]:
        glance, self._pending = self._pending, None
        wanted = kw.get("limit") or 0
        if (
            glance is not None
            and kw.get("order_by", "id") == "id"
            and not kw.get("descending")
            and kw.get("offset", 0) == 0
            and not kw.get("search")
            and kw.get("kind") is None
            and 0 < wanted <= GLANCE_ROWS
        ):
            return list(glance.items[:wanted])
        return list(self._get().list_items(**kw))


class CatalogueView(QWidget):
    addFilesRequested = Signal()
    addFolderRequested = Signal()
    message = Signal(str)  # transient status-bar message

    def __init__(
        self,
        services: Services,
        runner: TaskRunner,
        theme: Theme,
        errors: ErrorPresenter,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.runner = runner
        self.theme = theme
        self.errors = errors
        self._detail_request = 0
        self.last_verify_ok: bool | None = None
        self.verify_box: QMessageBox | None = None
        # The service (and SQLAlchemy behind it) is imported on first use, which may come
        # after the window's first paint (see MainWindow's defer_catalogue).
        self.source = _LazySource(lambda: services.catalogue, services.ctx.data_dir)
        self.model = CatalogueModel(self.source, parent=self)
        self._build()
        self.model.totalChanged.connect(self._total_changed)
        self.model.modelReset.connect(self._model_reset)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 14)
        layout.setSpacing(14)
        top = QHBoxLayout()
        header, self.subtitle = page_header("Catalogue", "")
        top.addWidget(header, 1)
        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText("Search title, format or license  (Ctrl+F)")
        self.search.setAccessibleName("Search catalogue")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(
            themed_icon("search", self.theme.colors["muted"]),
            QLineEdit.ActionPosition.LeadingPosition,
        )
        icon_color = self.theme.colors["text"]
        self.add_files_button = QPushButton(themed_icon("add-file", icon_color), "Add files…")
        self.add_files_button.setAccessibleName("Add files")
        self.add_files_button.setToolTip("Add files to the catalogue (Ctrl+O)")
        self.add_folder_button = QPushButton(themed_icon("add-folder", "#ffffff"), "Add folder…")
        self.add_folder_button.setObjectName("primary")
        self.add_folder_button.setAccessibleName("Add folder")
        self.add_folder_button.setToolTip("Add a dataset folder (Ctrl+Shift+O)")
        top.addWidget(self.search, 0, Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.add_files_button, 0, Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.add_folder_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addLayout(top)
        self.add_files_button.clicked.connect(self.addFilesRequested)
        self.add_folder_button.clicked.connect(self.addFolderRequested)

        self.stack = QStackedWidget()
        self.empty = EmptyState(
            "empty-box",
            "Your catalogue is empty",
            "Drop a dataset folder or files anywhere on this window, or add them with the "
            "button below. Contributor Desk detects the format, counts records and hashes every "
            "file so you can prove exactly what you contributed.",
            self.theme,
            action_text="Add a folder…",
        )
        assert self.empty.button is not None
        self.empty.button.clicked.connect(self.addFolderRequested)
        self.no_match = EmptyState(
            "search", "No matches", "Nothing in your catalogue matches this search.", self.theme
        )
        self.table = QTableView()
        self.table.setObjectName("catalogueTable")
        self.table.setAccessibleName("Catalogue items")
        self.table.setModel(self.model)
        self.table.setItemDelegate(CatalogueDelegate(self.theme, self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vh = self.table.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(CatalogueDelegate.ROW_HEIGHT)
        hh = CatalogueHeader(self.table)
        self.table.setHorizontalHeader(hh)
        hh.setHighlightSections(False)
        hh.setSortIndicatorShown(True)
        hh.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # catalogue order until asked
        self.table.setSortingEnabled(True)
        hh.setup_columns()
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.viewport().installEventFilter(hh)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        self.detail = DetailPane(self.theme)
        self.detail.verifyRequested.connect(self.verify)
        self.detail.exportRequested.connect(self.export)
        self.detail.revealRequested.connect(self.reveal)

        self.splitter = GripSplitter(self.theme)
        self.splitter.setObjectName("catalogueSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(12)
        self.table.setMinimumWidth(TABLE_MIN_WIDTH)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.handle(1).setToolTip("Drag to resize the list and the details")
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([620, 430])
        self.loading = QLabel("Opening your catalogue…")
        self.loading.setObjectName("emptyText")
        self.loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.loading)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.splitter)
        self.stack.addWidget(self.no_match)
        layout.addWidget(self.stack, 1)
        self.count_label = QLabel()
        self.count_label.setObjectName("muted")

    # -- model state ---------------------------------------------------------------------
    def load(self) -> None:
        self.model.refresh()
        if self.source.glanced and not self.source.built:
            # The first rows came from the glance: build the service in the background, so
            # scrolling, searching and details do not wait for it later.
            QTimer.singleShot(WARM_UP_MS, self._warm_up)

    def _warm_up(self) -> None:
        if not self.source.built:
            self.runner.start(self.source._get)

    def _apply_search(self) -> None:
        self.model.set_search(self.search.text())

    def _total_changed(self, total: int) -> None:
        searching = bool(self.model.search_text)
        if total == 0 and not searching:
            self.stack.setCurrentWidget(self.empty)
            self.subtitle.setText("Datasets and annotation sets you have prepared")
        elif total == 0:
            self.stack.setCurrentWidget(self.no_match)
            self.subtitle.setText(f"No items match “{self.model.search_text}”")
        else:
            self.stack.setCurrentWidget(self.splitter)
            noun = "item" if total == 1 else "items"
            if searching:
                self.subtitle.setText(f"{total:,} {noun} match “{self.model.search_text}”")
            else:
                self.subtitle.setText(f"{total:,} {noun} — datasets and annotation sets")

    def _model_reset(self) -> None:
        self.detail.clear()

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def select_item(self, item_id: int) -> None:
        row = self.model.ensure_loaded(item_id)
        if row >= 0:
            index = self.model.index(row, COL_TITLE)
            self.table.setCurrentIndex(index)
            self.table.scrollTo(index)

    def item_added(self, item: Any) -> None:
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.model.set_search("")
        self.model.refresh()
        self.select_item(item.id)
        self.message.emit(f"Added “{item.title}” to your catalogue")

    # -- detail --------------------------------------------------------------------------
    def current_id(self) -> int | None:
        index = self.table.currentIndex()
        item = self.model.item_at(index.row()) if index.isValid() else None
        return item.id if item is not None else None

    def _selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = {i.row() for i in selected.indexes()}
        item = self.model.item_at(min(rows)) if rows else None
        if item is None:
            self.detail.clear()
            return
        self.load_detail(item.id)

    def load_detail(self, item_id: int) -> None:
        self._detail_request += 1
        request = self._detail_request

        def done(detail: ItemDetail) -> None:
            if request == self._detail_request:  # ignore stale answers
                self.detail.show_detail(detail)
                self.runner.start(  # the History tab's timeline, from the local copy
                    self.services.rewards.timeline,
                    item_id,
                    on_result=self.detail.show_timeline,
                    on_error=lambda exc: log.warning("no timeline for #%s: %s", item_id, exc),
                )

        self.runner.start(
            self.services.catalogue.get, item_id, on_result=done, on_error=self.errors.show
        )

    # -- actions -------------------------------------------------------------------------
    def reveal(self, item_id: int) -> None:
        detail = self.detail.detail
        if detail is None or detail.summary.id != item_id:
            return
        folder = detail.source_path
        if folder.is_file():
            folder = folder.parent
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def export(self, item_id: int, fmt: str) -> None:
        path = self.choose_export_path(item_id, fmt)
        if path is not None:
            self.export_to(item_id, fmt, path)

    def choose_export_path(self, item_id: int, fmt: str) -> Path | None:
        detail = self.detail.detail
        base = (detail.summary.title if detail else f"item-{item_id}").replace("/", "-")
        if fmt == "croissant":
            path, _ = QFileDialog.getSaveFileName(
                self, "Export Croissant metadata", f"{base}.croissant.json", "JSON-LD (*.json)"
            )
        else:
            path = QFileDialog.getExistingDirectory(self, "Choose where to create the BagIt bag")
            if path:
                path = str(Path(path) / f"{base}-bag")
        return Path(path) if path else None

    def export_to(self, item_id: int, fmt: str, path: Path) -> None:
        self.message.emit(f"Exporting {fmt}…")
        self.runner.start(
            self.services.catalogue.export,
            item_id,
            fmt,
            path,
            on_result=lambda out: self.message.emit(f"Exported to {out}"),
            on_error=self.errors.show,
        )

    def verify(self, item_id: int) -> None:
        signing = self.services.signing
        detail = self.detail.detail
        if detail is None or detail.envelope is None:
            self.message.emit("Sign the item first: verification checks its signature and files")
            return
        envelope = json.dumps(detail.envelope).encode("utf-8")
        folder = detail.source_path
        self.message.emit("Verifying the signature and re-hashing every file…")
        self.detail.show_current_result("Verifying the signature and re-hashing every file…")
        self.runner.start(
            signing.verify_envelope_bytes,
            envelope,
            data_folder=folder,
            on_result=self._verified,
            on_error=self.errors.show,
        )

    def _verified(self, result: Any) -> None:
        problems = list(getattr(result, "problems", []))
        if not problems:
            self.message.emit("Verified: the signature is valid and every file matches")
            self.detail.show_current_result("✓ Verified: the signature is valid", "success")
            self.last_verify_ok = True
            return
        self.last_verify_ok = False
        lines = "\n".join(f"• {problem_location(p.path)}{p.message}" for p in problems[:20])
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Verification found differences")
        box.setText("The signature is valid, but the files changed since they were signed.")
        box.setInformativeText("Add the folder again to catalogue the new version.")
        box.setDetailedText(lines)
        box.open()
        self.detail.show_current_result("Files changed since they were signed", "danger")
        self.verify_box = box
