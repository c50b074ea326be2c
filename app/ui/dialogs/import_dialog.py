"""The import dialog: what a drop contains, how to catalogue it, and hashing with Cancel.

Preview (scan + format detection) and add (parallel hashing) both run in background tasks;
the dialog only shows their results. Unusable drops are explained here, in the user's terms.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.errors import Cancelled, KnownError
from app.domain.problems import Problem, Severity
from app.domain.states import Kind
from app.domain.units import problem_location
from app.ui.adapters.tasks import Task, TaskRunner
from app.ui.licenses import SPDX_LICENSES
from app.ui.resources import themed_icon
from app.ui.text import human_count, human_size
from app.ui.theme import Theme

if TYPE_CHECKING:
    from app.services.catalogue import CatalogueService, ImportPreview, ItemSummary
    from app.ui.errors import ErrorPresenter

log = logging.getLogger(__name__)


class ImportDialog(QDialog):
    added = Signal(object)  # ItemSummary

    def __init__(
        self,
        catalogue: CatalogueService,
        runner: TaskRunner,
        theme: Theme,
        paths: list[Path],
        errors: ErrorPresenter | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.catalogue = catalogue
        self.runner = runner
        self.theme = theme
        self.paths = paths
        self.errors = errors
        self.preview: ImportPreview | None = None
        self.task: Task | None = None
        self.hashing = False
        self.result_item: ItemSummary | None = None
        self._tone = ""
        self.setWindowTitle("Add to catalogue")
        self.setAccessibleName("Add to catalogue")
        self.setMinimumWidth(600)
        self._build()
        QTimer.singleShot(0, self._start_preview)

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 18)
        layout.setSpacing(12)
        names = ", ".join(p.name or str(p) for p in self.paths[:3])
        more = f" and {len(self.paths) - 3} more" if len(self.paths) > 3 else ""
        self.heading = QLabel(f"Add {names}{more}")
        self.heading.setObjectName("pageTitle")
        self.heading.setStyleSheet("font-size: 14pt;")
        self.heading.setWordWrap(True)
        self.summary = QLabel("Looking at what you dropped…")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)
        layout.addWidget(self.heading)
        layout.addWidget(self.summary)

        card = QFrame()
        card.setObjectName("card")
        form = QFormLayout(card)
        form.setContentsMargins(16, 14, 16, 14)
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(10)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.formats = QLabel("—")
        self.formats.setWordWrap(True)
        self.formats.setAccessibleName("Detected formats")
        self.title_edit = QLineEdit()
        self.title_edit.setAccessibleName("Title")
        self.title_edit.setPlaceholderText("A short, descriptive title")
        self.kind_combo = QComboBox()
        self.kind_combo.setAccessibleName("Kind")
        self.kind_combo.addItem("Dataset", Kind.DATASET)
        self.kind_combo.addItem("Annotation set", Kind.ANNOTATION)
        self.parent_combo = QComboBox()
        self.parent_combo.setAccessibleName("Parent dataset")
        self.parent_combo.addItem("No parent dataset", None)
        self.parent_combo.setToolTip("The dataset these annotations label")
        self.license_combo = QComboBox()
        self.license_combo.setEditable(True)
        self.license_combo.setAccessibleName("License")
        self.license_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.license_combo.addItem("", "")
        entries = []
        for spdx, name in SPDX_LICENSES:
            self.license_combo.addItem(f"{spdx} — {name}", spdx)
            entries.append(f"{spdx} — {name}")
        completer = QCompleter(QStringListModel(entries, self), self)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.license_combo.setCompleter(completer)
        line = self.license_combo.lineEdit()
        if line is not None:
            line.setPlaceholderText("Search SPDX licenses, e.g. CC-BY-4.0")
        form.addRow(self._label("Detected"), self.formats)
        form.addRow(self._label("Title"), self.title_edit)
        form.addRow(self._label("Kind"), self.kind_combo)
        form.addRow(self._label("Parent dataset"), self.parent_combo)
        form.addRow(self._label("License"), self.license_combo)
        layout.addWidget(card)

        self.problems_title = QLabel("Problems found")
        self.problems_title.setObjectName("sectionTitle")
        self.problems = QListWidget()
        self.problems.setAccessibleName("Problems found")
        self.problems.setMaximumHeight(150)
        self.problems_title.hide()
        self.problems.hide()
        layout.addWidget(self.problems_title)
        layout.addWidget(self.problems)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Status")
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Hashing progress")
        self.progress.setTextVisible(False)
        self.progress.setRange(0, 0)  # busy while previewing
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addStretch(1)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel")
        self.add_button = QPushButton("Add to catalogue")
        self.add_button.setObjectName("primary")
        self.add_button.setAccessibleName("Add to catalogue")
        self.add_button.setEnabled(False)
        self.add_button.setDefault(True)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.add_button)
        layout.addLayout(buttons)

        self.kind_combo.currentIndexChanged.connect(self._kind_changed)
        self.add_button.clicked.connect(self.start_add)
        self.cancel_button.clicked.connect(self.reject)
        self._kind_changed()

    def _label(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("muted")
        return label

    def _kind_changed(self) -> None:
        is_annotation = str(self.kind_combo.currentData()) == Kind.ANNOTATION.value
        self.parent_combo.setEnabled(is_annotation and not self.hashing)

    # -- preview ---------------------------------------------------------------------------
    def _start_preview(self) -> None:
        self.task = self.runner.start(
            self.catalogue.preview,
            list(self.paths),
            with_cancel=True,
            on_result=self._preview_ready,
            on_error=self._preview_failed,
        )
        self.runner.start(
            lambda: self.catalogue.list_items(kind=Kind.DATASET, limit=2000, order_by="title"),
            on_result=self._parents_ready,
            on_error=lambda exc: log.warning("could not list parent datasets: %s", exc),
        )

    def _parents_ready(self, items: list[Any]) -> None:
        for item in items:
            self.parent_combo.addItem(f"{item.title}  (#{item.id})", item.id)

    def _preview_ready(self, preview: ImportPreview) -> None:
        self.task = None
        self.preview = preview
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.hide()
        report = preview.report
        files = f"{preview.file_count:,} file{'s' if preview.file_count != 1 else ''}"
        self.summary.setText(f"{files}, {human_size(preview.total_size)} in {preview.root}")
        parts = []
        for part in report.parts:
            count = (
                "" if part.record_count is None else f" · {human_count(part.record_count)} records"
            )
            where = "" if part.path == "." else f" in {part.path}"
            parts.append(f"{part.format}{where}{count}")
        self.formats.setText(
            "\n".join(parts) if parts else "No known format (files are kept as-is)"
        )
        self.title_edit.setText(preview.suggested_title)
        self.kind_combo.setCurrentIndex(0 if preview.suggested_kind == Kind.DATASET else 1)
        self._show_problems([*preview.problems, *report.all_problems()])
        if not preview.usable:
            self._set_status(self._unusable_reason(preview), "danger")
            self.add_button.setEnabled(False)
            self.cancel_button.setText("Close")
            return
        if preview.duplicate_of is not None:
            self._set_status(
                f"These files were added before (catalogue item #{preview.duplicate_of}). "
                "Adding them again will be refused if nothing changed.",
                "warning",
            )
        else:
            self._set_status("Ready. Files are hashed when you add them.", "muted")
        self.add_button.setEnabled(True)
        self.title_edit.setFocus()

    def _unusable_reason(self, preview: ImportPreview) -> str:
        errors = [p for p in preview.problems if p.severity == Severity.ERROR]
        if preview.file_count == 0 and not errors:
            return "Nothing to add: there are no files here (the folder is empty)."
        if errors:
            first = errors[0]
            where = problem_location(first.path)
            return f"This cannot be added: {where}{first.message}."
        return "This cannot be added as it is."

    def _preview_failed(self, exc: BaseException) -> None:
        self.task = None
        self.progress.hide()
        if isinstance(exc, Cancelled):
            return
        if isinstance(exc, KnownError):
            text = exc.message[:1].upper() + exc.message[1:]
            if exc.hint:
                text += f". {exc.hint[:1].upper()}{exc.hint[1:]}."
            self.summary.setText("This cannot be added.")
            self._set_status(text, "danger")
        else:
            self._set_status("Looking at these files failed unexpectedly.", "danger")
            if self.errors is not None:
                self.errors.show(exc)
        self.cancel_button.setText("Close")

    def _show_problems(self, problems: list[Problem]) -> None:
        self.problems.clear()
        icons = {
            Severity.ERROR: ("error", self.theme.colors["danger"]),
            Severity.WARNING: ("warning", self.theme.colors["warning"]),
            Severity.INFO: ("info", self.theme.colors["muted"]),
        }
        for p in problems[:500]:
            name, color = icons.get(p.severity, icons[Severity.INFO])
            text = f"{problem_location(p.path)}{p.message}"
            item = QListWidgetItem(themed_icon(name, color), text)
            item.setToolTip(text)
            self.problems.addItem(item)
        visible = bool(problems)
        self.problems_title.setVisible(visible)
        self.problems.setVisible(visible)
        if visible:
            self.problems_title.setText(f"Problems found ({len(problems):,})")

    def _set_status(self, text: str, tone: str) -> None:
        if tone != self._tone:  # restyling re-polishes the widget: only when the tone changes
            self._tone = tone
            color = self.theme.colors.get(tone, self.theme.colors["muted"])
            self.status.setStyleSheet(f"color: {color};")
        self.status.setText(text)

    # -- add -------------------------------------------------------------------------------
    def selected_license(self) -> str:
        text = self.license_combo.currentText().strip()
        return text.split(" — ", 1)[0].strip()

    def start_add(self) -> None:
        from app.services.catalogue import ImportRequest

        if self.preview is None or self.hashing:
            return
        title = self.title_edit.text().strip()
        if not title:
            self._set_status("Give it a title first.", "danger")
            self.title_edit.setFocus()
            return
        kind = Kind(self.kind_combo.currentData())  # Qt hands StrEnum data back as str
        parent_id = self.parent_combo.currentData() if kind == Kind.ANNOTATION else None
        request = ImportRequest(
            paths=list(self.preview.paths),
            kind=kind,
            title=title,
            license=self.selected_license(),
            parent_id=parent_id,
            preview=self.preview,
        )
        self._set_busy(True)
        self._set_status(f"Hashing {human_size(self.preview.total_size)}…", "muted")
        self.task = self.runner.start(
            self.catalogue.add,
            request,
            with_cancel=True,
            on_progress=self._progress,
            on_result=self._added,
            on_error=self._add_failed,
        )

    def _set_busy(self, busy: bool) -> None:
        self.hashing = busy
        for w in (self.title_edit, self.kind_combo, self.license_combo, self.add_button):
            w.setEnabled(not busy)
        self._kind_changed()
        self.progress.setVisible(busy)
        self.progress.setValue(0)
        self.cancel_button.setText("Cancel" if busy else "Close")

    def _progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setValue(int(done * 1000 / total))
            self._set_status(f"Hashing… {human_size(done)} of {human_size(total)}", "muted")

    def _added(self, item: ItemSummary) -> None:
        self.task = None
        self.hashing = False
        self.result_item = item
        self.added.emit(item)
        self.accept()

    def _add_failed(self, exc: BaseException) -> None:
        self.task = None
        self._set_busy(False)
        if isinstance(exc, Cancelled):
            self._set_status("Cancelled. Nothing was added.", "muted")
            self.add_button.setEnabled(self.preview is not None and self.preview.usable)
            return
        if isinstance(exc, KnownError):
            text = exc.message[:1].upper() + exc.message[1:]
            if exc.hint:
                text += f". {exc.hint[:1].upper()}{exc.hint[1:]}."
            self._set_status(text, "danger")
            self.add_button.setEnabled(True)
            return
        self._set_status("Adding failed unexpectedly. Nothing was added.", "danger")
        if self.errors is not None:
            self.errors.show(exc)

    def reject(self) -> None:
        """Cancel first, close second: Escape during hashing stops the hash, not the dialog."""
        if self.task is not None and self.hashing:
            self.task.cancel()
            self._set_status("Cancelling…", "muted")
            self.cancel_button.setEnabled(False)
            QTimer.singleShot(0, lambda: self.cancel_button.setEnabled(True))
            return
        if self.task is not None:
            self.task.cancel()
        super().reject()
