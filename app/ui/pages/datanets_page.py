"""The "My datanets" page: the datanets the user's key owns, their rules (create and edit),
and the contributions waiting for the owner's review (approve or reject with a note).

Every registry call runs on the task runner through app.services.datanet_owner; the page only
shows what comes back and never blocks the window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.units import plural
from app.ui.text import human_size
from app.ui.widgets.common import page_header

if TYPE_CHECKING:
    from app.services.context import ServiceContext
    from app.services.datanet_owner import OwnedDatanets, ReviewEntry
    from app.services.datanets import DatanetView
    from app.ui.adapters.tasks import TaskRunner
    from app.ui.errors import ErrorPresenter
    from app.ui.theme import Theme

NO_LIMIT = 0  # spin boxes: 0 = no rule
MB = 1024 * 1024


def _client(ctx: ServiceContext) -> Any:
    from app.services.clients import make_client

    return make_client(ctx)


def _with_client(ctx: ServiceContext, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run fn(client, ...) with a client of its own (a worker thread's)."""
    client = _client(ctx)
    try:
        return fn(client, *args, **kwargs)
    finally:
        client.close()


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


def _spin(maximum: int, suffix: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(0, maximum)
    box.setSpecialValueText("No limit")
    box.setSuffix(suffix)
    box.setGroupSeparatorShown(True)
    return box


def parts_summary(parts: tuple[dict[str, Any], ...]) -> str:
    """The declared format report in a few words: formats, records, columns of tables."""
    if not parts:
        return "No format report"
    formats = sorted({str(p.get("format", "?")) for p in parts})
    records = sum(int(p.get("records") or 0) for p in parts)
    columns = sorted({str(c) for p in parts for c in p.get("columns") or []})
    text = f"{', '.join(formats)}; {records:,} records"
    if columns:
        shown = ", ".join(columns[:6]) + (" …" if len(columns) > 6 else "")
        text += f"; columns {shown}"
    return text


class DatanetsPage(QWidget):
    """My datanets: list (left), rules editor and review queue (right, in tabs)."""

    message = Signal(str)

    def __init__(
        self,
        ctx: ServiceContext,
        runner: TaskRunner,
        theme: Theme,
        errors: ErrorPresenter,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx, self.runner, self.theme, self.errors = ctx, runner, theme, errors
        self.owned: tuple[DatanetView, ...] = ()
        self.entries: list[ReviewEntry] = []
        self.editing_new = True
        self.loaded = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(14)
        header, self.subtitle = page_header(
            "My datanets",
            "Collections your key owns: their rules, and the contributions waiting for your review",
        )
        layout.addWidget(header)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setAccessibleName("My datanets")
        self.list.setMinimumWidth(200)
        self.list.setSpacing(3)
        self.list.currentRowChanged.connect(self._selected)
        ll.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.new_button = QPushButton("New datanet")
        self.new_button.setAccessibleName("New datanet")
        self.new_button.clicked.connect(self.new_datanet)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        row.addWidget(self.new_button)
        row.addWidget(self.refresh_button)
        ll.addLayout(row)
        split.addWidget(left)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_editor(), "Rules")
        self.tabs.addTab(self._build_queue(), "Review queue")
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setSizes([240, 760])
        layout.addWidget(split, 1)
        self.status = QLabel("")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.new_datanet()

    # -- building ------------------------------------------------------------------------
    def _build_editor(self) -> QWidget:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        outer.addLayout(form)
        outer.addStretch(1)
        form.setContentsMargins(14, 12, 14, 12)
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(8)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.id_edit = QLineEdit()
        self.id_edit.setPlaceholderText("e.g. street-signs (lowercase letters, digits, -)")
        self.id_edit.setMaxLength(64)
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(200)
        self.description_edit = QPlainTextEdit()
        self.description_edit.setFixedHeight(64)
        self.description_edit.setTabChangesFocus(True)
        self.description_edit.setPlaceholderText("What belongs here and what it is for")
        self.formats_edit = QLineEdit()
        self.formats_edit.setPlaceholderText("Any; or e.g. csv, parquet, jsonl")
        self.licenses_edit = QLineEdit()
        self.licenses_edit.setPlaceholderText("Any; or e.g. CC0-1.0, CC-BY-4.0")
        self.columns_edit = QLineEdit()
        self.columns_edit.setPlaceholderText("None; or e.g. id, text, label")
        self.max_files = _spin(10_000_000)
        self.max_size = _spin(10_000_000, " MB")
        self.min_records = _spin(2_000_000_000)
        self.no_duplicates = QCheckBox("Refuse exact copies of files the datanet already holds")
        self.review = QCheckBox("I review every contribution before it is accepted")
        self.version_label = QLabel("")
        self.version_label.setObjectName("muted")
        self.version_label.setWordWrap(True)
        for name, field in (
            ("Id", self.id_edit),
            ("Name", self.name_edit),
            ("Description", self.description_edit),
            ("File types", self.formats_edit),
            ("Licenses", self.licenses_edit),
            ("Required columns", self.columns_edit),
            ("Max files", self.max_files),
            ("Max total size", self.max_size),
            ("Min records", self.min_records),
            ("", self.no_duplicates),
            ("", self.review),
            ("", self.version_label),
        ):
            if field is not None:
                field.setAccessibleName(
                    name or field.text() if isinstance(field, QCheckBox) else name
                )
            form.addRow(name, field)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.save_button = QPushButton("Create datanet")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.save_button)
        form.addRow(buttons)
        scroll.setWidget(body)
        return scroll

    def _build_queue(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(10, 10, 10, 10)
        self.queue_hint = QLabel("")
        self.queue_hint.setObjectName("muted")
        self.queue_hint.setWordWrap(True)
        layout.addWidget(self.queue_hint)
        self.queue = QTreeWidget()
        self.queue.setAccessibleName("Review queue")
        self.queue.setRootIsDecorated(False)
        self.queue.setHeaderLabels(["Title", "Contributor", "Size", "Rules"])
        self.queue.setUniformRowHeights(True)
        header = self.queue.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.queue.currentItemChanged.connect(lambda *_a: self._queue_buttons())
        layout.addWidget(self.queue, 1)
        self.entry_details = QLabel("")
        self.entry_details.setAccessibleName("Contribution details")
        self.entry_details.setWordWrap(True)
        self.entry_details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.entry_details)
        self.note_edit = QLineEdit()
        self.note_edit.setAccessibleName("Review note")
        self.note_edit.setPlaceholderText("A note for the contributor (required to reject)")
        self.note_edit.setMaxLength(2000)
        layout.addWidget(self.note_edit)
        row = QHBoxLayout()
        row.addStretch(1)
        self.reject_button = QPushButton("Reject")
        self.reject_button.setAccessibleName("Reject contribution")
        self.approve_button = QPushButton("Approve")
        self.approve_button.setAccessibleName("Approve contribution")
        self.approve_button.setObjectName("primary")
        self.reject_button.clicked.connect(lambda: self.decide(accept=False))
        self.approve_button.clicked.connect(lambda: self.decide(accept=True))
        row.addWidget(self.reject_button)
        row.addWidget(self.approve_button)
        layout.addLayout(row)
        self._queue_buttons()
        return box

    # -- loading -------------------------------------------------------------------------
    def refresh(self) -> None:
        from app.services.datanet_owner import DatanetOwnerService

        self.status.setText("Reading your datanets…")
        self.runner.start(
            _with_client,
            self.ctx,
            lambda client: DatanetOwnerService(self.ctx).mine(client),
            on_result=self._show_owned,
            on_error=self._failed,
        )

    def _failed(self, exc: BaseException) -> None:
        from app.domain.errors import KnownError

        self.status.setText(f"Failed: {exc.message}" if isinstance(exc, KnownError) else "")
        self.errors.show(exc)

    def _show_owned(self, owned: OwnedDatanets, select: str | None = None) -> None:
        self.loaded = True
        current = select or self.current_id()
        self.owned = owned.mine
        self.list.blockSignals(True)
        self.list.clear()
        for view in owned.mine:
            item = QListWidgetItem(f"{view.name}\n{view.id} · rules v{view.rules_version}")
            item.setData(Qt.ItemDataRole.UserRole, view.id)
            item.setToolTip(view.description or view.name)
            item.setSizeHint(QSize(0, 46))
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.status.setText(
            owned.note or f"{plural(len(owned.mine), 'datanet')} owned by your key."
        )
        ids = [v.id for v in owned.mine]
        if current in ids:
            self.list.setCurrentRow(ids.index(current))
        elif ids:
            self.list.setCurrentRow(0)
        else:
            self.new_datanet()

    def current_id(self) -> str | None:
        item = self.list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def _selected(self, row: int) -> None:
        if row < 0 or row >= len(self.owned):
            return
        self._fill(self.owned[row])
        self.load_queue()

    # -- the rules editor ----------------------------------------------------------------
    def new_datanet(self) -> None:
        self.editing_new = True
        self.list.blockSignals(True)
        self.list.clearSelection()
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self.id_edit.setReadOnly(False)
        for edit in (self.id_edit, self.name_edit, self.formats_edit, self.licenses_edit):
            edit.clear()
        self.columns_edit.clear()
        self.description_edit.clear()
        for spin in (self.max_files, self.max_size, self.min_records):
            spin.setValue(NO_LIMIT)
        self.no_duplicates.setChecked(False)
        self.review.setChecked(False)
        self.version_label.setText("A new datanet starts at rules version 1.")
        self.save_button.setText("Create datanet")
        self.tabs.setCurrentIndex(0)
        self.entries = []
        self.queue.clear()
        self.queue_hint.setText("Pick one of your datanets to see what waits for review.")
        self._queue_buttons()

    def _fill(self, view: DatanetView) -> None:
        self.editing_new = False
        rules = view.rules
        self.id_edit.setText(view.id)
        self.id_edit.setReadOnly(True)
        self.name_edit.setText(view.name)
        self.description_edit.setPlainText(view.description)
        self.formats_edit.setText(", ".join(rules.formats))
        self.licenses_edit.setText(", ".join(rules.licenses))
        self.columns_edit.setText(", ".join(rules.required_columns))
        self.max_files.setValue(min(rules.max_files or 0, self.max_files.maximum()))
        self.max_size.setValue(min((rules.max_total_size or 0) // MB, self.max_size.maximum()))
        self.min_records.setValue(min(rules.min_records or 0, self.min_records.maximum()))
        self.no_duplicates.setChecked(rules.no_duplicates)
        self.review.setChecked(rules.review)
        self.version_label.setText(
            f"Rules version {view.rules_version}. Changing the rules makes version "
            f"{view.rules_version + 1}: contributions signed for an older version are refused "
            "and signed again by their contributors."
        )
        self.save_button.setText("Save changes")

    def rules_json(self) -> dict[str, Any]:
        return {
            "formats": [f.lower().lstrip(".") for f in _csv(self.formats_edit.text())],
            "licenses": _csv(self.licenses_edit.text()),
            "requiredColumns": _csv(self.columns_edit.text()),
            "maxFiles": self.max_files.value() or None,
            "maxTotalSize": self.max_size.value() * MB or None,
            "minRecords": self.min_records.value() or None,
            "noDuplicates": self.no_duplicates.isChecked(),
            "review": self.review.isChecked(),
        }

    def save(self) -> None:
        from app.services.datanet_owner import DatanetDraft, DatanetOwnerService

        draft = DatanetDraft(
            id=self.id_edit.text().strip(),
            name=self.name_edit.text(),
            description=self.description_edit.toPlainText(),
            rules=self.rules_json(),
        )
        new = self.editing_new
        service = DatanetOwnerService(self.ctx)

        def work(client: Any) -> OwnedDatanets:
            service.save(client, draft, new=new)
            return service.mine(client)

        self.save_button.setEnabled(False)
        self.status.setText("Saving…")
        self.runner.start(
            _with_client,
            self.ctx,
            work,
            on_result=lambda owned: self._saved(owned, draft.id, new),
            on_error=self._failed,
            on_finished=lambda: self.save_button.setEnabled(True),
        )

    def _saved(self, owned: OwnedDatanets, net: str, new: bool) -> None:
        self._show_owned(owned, select=net)
        text = f"Datanet {net} created." if new else f"Datanet {net} saved."
        self.status.setText(text)
        self.message.emit(text)

    # -- the review queue ----------------------------------------------------------------
    def load_queue(self) -> None:
        from app.services.datanet_owner import DatanetOwnerService

        net = self.current_id()
        if net is None:
            return
        self.queue_hint.setText("Reading the review queue…")
        self.runner.start(
            _with_client,
            self.ctx,
            lambda client: DatanetOwnerService(self.ctx).queue(client, net),
            on_result=lambda entries: self._show_queue(net, entries),
            on_error=self._failed,
        )

    def _show_queue(self, net: str, entries: list[ReviewEntry]) -> None:
        if net != self.current_id():
            return
        self.entries = entries
        self.queue.blockSignals(True)
        self.queue.clear()
        self.queue.blockSignals(False)
        for e in entries:
            check = (
                f"✓ Passed rules v{e.rules_version or 1}"
                if not e.reasons
                else "; ".join(r.message for r in e.reasons)
            )
            row = QTreeWidgetItem(
                [e.title, e.contributor[:8] + "…", human_size(e.total_size), check]
            )
            row.setToolTip(0, e.title)
            row.setToolTip(1, e.contributor)
            row.setData(0, Qt.ItemDataRole.UserRole, e.id)
            self.queue.addTopLevelItem(row)
        view = next((v for v in self.owned if v.id == net), None)
        if view is not None and not view.rules.review:
            hint = "Review is off for this datanet: contributions are accepted by the rules."
        elif entries:
            hint = (
                f"{plural(len(entries), 'contribution')} "
                + ("waits" if len(entries) == 1 else "wait")
                + " for your decision."
            )
        else:
            hint = "Nothing waits for review."
        self.queue_hint.setText(hint)
        self.tabs.setTabText(1, f"Review queue ({len(entries)})" if entries else "Review queue")
        first = self.queue.topLevelItem(0)
        if entries and first is not None:
            self.queue.setCurrentItem(first)
        self._queue_buttons()

    def _queue_buttons(self) -> None:
        item = self.queue.currentItem()
        has = item is not None
        self.approve_button.setEnabled(has)
        self.reject_button.setEnabled(has)
        entry = None
        if item is not None:
            cid = item.data(0, Qt.ItemDataRole.UserRole)
            entry = next((e for e in self.entries if e.id == cid), None)
        if entry is None:
            self.entry_details.setText("")
            return
        files = "file" if entry.file_count == 1 else "files"
        self.entry_details.setText(
            f"{entry.kind.capitalize()}, {entry.file_count:,} {files}, "
            f"{human_size(entry.total_size)}, license {entry.license or 'none'}\n"
            f"Format report: {parts_summary(entry.parts)}\n"
            f"Contributor key: {entry.contributor}"
        )

    def decide(self, *, accept: bool) -> None:
        from app.services.datanet_owner import DatanetOwnerService

        item = self.queue.currentItem()
        if item is None:
            return
        cid = str(item.data(0, Qt.ItemDataRole.UserRole))
        note = self.note_edit.text()
        self.approve_button.setEnabled(False)
        self.reject_button.setEnabled(False)
        self.runner.start(
            _with_client,
            self.ctx,
            lambda client: DatanetOwnerService(self.ctx).decide(
                client, cid, accept=accept, note=note
            ),
            on_result=lambda state: self._decided(item.text(0), state),
            on_error=self._decide_failed,
        )

    def _decide_failed(self, exc: BaseException) -> None:
        self._queue_buttons()
        self._failed(exc)

    def _decided(self, title: str, state: str) -> None:
        self.note_edit.clear()
        text = f"“{title}” {state}."
        self.status.setText(text)
        self.message.emit(text)
        self.load_queue()
