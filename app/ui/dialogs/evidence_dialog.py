"""The Evidence view of one contribution: every attributed event behind its rewards, with the
status of its evidence checked against the contributor's own files (a window of its own,
opened from the catalogue's detail pane).

At the top the counts per status, a filter by status and, when the registry's evidence is
false for an unchanged file, a red banner saying so; then the table of events (time, model,
method, earned amount, status with its icon); below it the selected event's span as it is in
the local file, with its line number for text files, and the model output the operator quoted.
The listing comes from app.services.evidence_review (the same as `contributor-desk evidence`).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.domain.money import format_amount, format_micro
from app.domain.text import display_text
from app.domain.units import method_label, plural
from app.services.evidence_check import FALSE_CLAIMS, Status, label
from app.services.evidence_review import EvidenceListing, EvidenceRow
from app.ui.resources import themed_icon
from app.ui.theme import Theme

ModelIndex = QModelIndex | QPersistentModelIndex
COLUMNS = ("Time", "Model", "Method", "Earned", "Evidence", "Where")
COL_TIME, COL_MODEL, COL_METHOD, COL_EARNED, COL_STATUS, COL_WHERE = range(len(COLUMNS))
ALL = ""  # the filter's "every status"

# Icon and theme colour per status: checked and true, your side, not checkable, false claim.
STATUS_LOOK: dict[Status, tuple[str, str]] = {
    Status.VERIFIED: ("check", "success"),
    Status.CHANGED: ("warning", "warning"),
    Status.MISSING: ("info", "muted"),
    Status.ASSERTED: ("info", "muted"),
    Status.SPAN_MISMATCH: ("error", "danger"),
    Status.NOT_IN_CONTRIBUTION: ("error", "danger"),
}
SHORT: dict[Status, str] = {
    Status.VERIFIED: "Verified against your files",
    Status.CHANGED: "Your copy changed since submission",
    Status.MISSING: "File not on this computer",
    Status.ASSERTED: "Operator-asserted",
    Status.SPAN_MISMATCH: "Span mismatch (false claim)",
    Status.NOT_IN_CONTRIBUTION: "File not in your contribution (false claim)",
}


def _file_name(path: str | None) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] if path else ""


def where_text(row: EvidenceRow) -> str:
    """Where the evidence points, in the local file when there is one."""
    if row.file_sha256 is None:
        return "—"
    name = _file_name(row.local_path or row.file_path) or f"file {row.file_sha256[:12]}…"
    if row.offset is None or row.length is None:
        return f"{name} (whole file)"
    if row.line is not None:
        return f"{name}, line {row.line:,}"
    return f"{name}, bytes {row.offset:,}–{row.offset + row.length:,}"


class EvidenceModel(QAbstractTableModel):
    """The events of one listing, those of one status when filtered."""

    def __init__(
        self,
        theme: Theme,
        parent: QWidget | None = None,
        recheck: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(parent)
        self.theme = theme
        self._all: list[EvidenceRow] = []
        self._rows: list[EvidenceRow] = []
        self._filter = ALL
        self._icons: dict[Status, QIcon] = {}

    def set_rows(self, rows: list[EvidenceRow]) -> None:
        self.beginResetModel()
        self._all = list(rows)
        self._apply()
        self.endResetModel()

    def set_filter(self, status: str) -> None:
        self.beginResetModel()
        self._filter = status
        self._apply()
        self.endResetModel()

    def _apply(self) -> None:
        self._rows = [r for r in self._all if not self._filter or r.status == self._filter]

    def row_at(self, row: int) -> EvidenceRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(COLUMNS)
        ):
            return COLUMNS[section]
        return None

    def _icon(self, status: Status) -> QIcon:
        icon = self._icons.get(status)
        if icon is None:
            name, color = STATUS_LOOK[status]
            icon = self._icons[status] = themed_icon(name, self.theme.colors[color])
        return icon

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(r, col)
        if role == Qt.ItemDataRole.DecorationRole and col == COL_STATUS:
            return self._icon(r.status)
        if role == Qt.ItemDataRole.ForegroundRole and col == COL_STATUS:
            return QColor(self.theme.colors[STATUS_LOOK[r.status][1]])
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == COL_STATUS:
                return label(r.status)
            if col == COL_EARNED:
                return format_micro(r.amount_micro)
            if col == COL_WHERE and r.local_path:
                return display_text(r.local_path)
            if col == COL_MODEL:
                return display_text(r.model_id)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == COL_EARNED:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(r: EvidenceRow, col: int) -> str:
        if col == COL_TIME:
            return f"{r.at:%Y-%m-%d %H:%M}"
        if col == COL_MODEL:
            return display_text(r.model_name)
        if col == COL_METHOD:
            return method_label(r.method)
        if col == COL_EARNED:
            return format_amount(r.amount_micro)
        if col == COL_STATUS:
            return SHORT[r.status]
        return display_text(where_text(r))


class EvidenceDialog(QDialog):
    """One contribution's Evidence view; `show_listing` fills it (again, after a re-check)."""

    def __init__(
        self,
        theme: Theme,
        parent: QWidget | None = None,
        recheck: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(parent)
        self.theme = theme
        self.listing: EvidenceListing | None = None
        self.setObjectName("evidenceDialog")
        self.setWindowTitle("Evidence")
        self.resize(1100, 720)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 12)
        layout.setSpacing(10)
        self.title = QLabel("Evidence")
        self.title.setObjectName("pageTitle")
        self.subtitle = QLabel("")
        self.subtitle.setObjectName("pageSubtitle")
        self.subtitle.setWordWrap(True)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addLayout(self._build_counts())
        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setObjectName("evidenceBanner")
        c = theme.colors
        self.banner.setStyleSheet(
            f"QLabel#evidenceBanner {{ background: {c['danger']}; color: {c['surface']}; "
            "border-radius: 6px; padding: 8px 10px; font-weight: 600; }"
        )
        self.banner.hide()
        layout.addWidget(self.banner)
        self.pending = QLabel("")
        self.pending.setWordWrap(True)
        self.pending.setStyleSheet(f"color: {c['muted']};")
        self.pending.hide()
        layout.addWidget(self.pending)

        split = QSplitter(Qt.Orientation.Vertical)
        self.model = EvidenceModel(theme, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Attributed events")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for col in (COL_TIME, COL_MODEL, COL_METHOD, COL_EARNED):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_STATUS, QHeaderView.ResizeMode.ResizeToContents)
        self.table.selectionModel().selectionChanged.connect(self._selected)
        split.addWidget(self.table)
        split.addWidget(self._build_detail())
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 2)
        layout.addWidget(split, 1)
        self.empty = QLabel("")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet(f"color: {c['muted']}; padding: 24px;")
        self.empty.hide()
        layout.addWidget(self.empty)
        self.split = split
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.recheck_button = buttons.addButton(
            "Check again", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.recheck_button.setToolTip("Check every span against your files again")
        self.recheck_button.setVisible(recheck is not None)
        if recheck is not None:
            self.recheck_button.clicked.connect(lambda: recheck())
        layout.addWidget(buttons)

    def _build_counts(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(14)
        self.counts_box = QHBoxLayout()
        self.counts_box.setSpacing(14)
        row.addLayout(self.counts_box)
        row.addStretch(1)
        row.addWidget(QLabel("Show:"))
        self.filter = QComboBox()
        self.filter.setAccessibleName("Filter by evidence status")
        self.filter.currentIndexChanged.connect(self._filter_changed)
        row.addWidget(self.filter)
        return row

    def _build_detail(self) -> QWidget:
        box = QFrame()
        box.setObjectName("evidenceDetail")
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 6, 0, 0)
        v.setSpacing(6)
        self.detail_title = QLabel("Select an event to see its evidence.")
        self.detail_title.setWordWrap(True)
        self.detail_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.span = QTextEdit()
        self.span.setReadOnly(True)
        self.span.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.span.setAccessibleName("Matched span in your file")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.TypeWriter)
        self.span.setFont(mono)
        self.excerpt = QLabel("")
        self.excerpt.setWordWrap(True)
        self.excerpt.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.detail_title)
        v.addWidget(self.span, 1)
        v.addWidget(self.excerpt)
        return box

    # -- filling -------------------------------------------------------------------------
    def show_listing(self, listing: EvidenceListing) -> None:
        self.listing = listing
        name = display_text(listing.title)
        self.setWindowTitle(f"Evidence — {name}")
        ref = f"#{listing.item_id} " if listing.item_id is not None else ""
        self.title.setText(f"Evidence for {ref}{name}")
        self.subtitle.setText(
            "Every attributed event behind this contribution's rewards, its evidence checked "
            f"against the files on this computer. Registry: {display_text(listing.registry)}"
        )
        self._fill_counts(listing)
        false = sum(n for s, n in listing.counts.items() if s in FALSE_CLAIMS)
        self.banner.setVisible(bool(false))
        self.banner.setText(
            f"{plural(false, 'event')} {'carries' if false == 1 else 'carry'} evidence that is "
            "false for your unchanged files: "
            "the registry or the model operator claims a match that is not there."
        )
        self.pending.setVisible(bool(listing.entries_left))
        self.pending.setText(
            f"{plural(listing.entries_left, 'ledger entry', 'ledger entries')} not read to the "
            "end yet: each sync fetches more of them."
        )
        self.model.set_rows(listing.rows)
        has_rows = bool(listing.rows)
        self.split.setVisible(has_rows)
        self.empty.setVisible(not has_rows)
        self.empty.setText(
            "No checked events yet. Sync on the Rewards page (F5) to fetch the events behind "
            "this contribution's rewards."
        )
        if has_rows:
            self.table.selectRow(0)

    def _fill_counts(self, listing: EvidenceListing) -> None:
        while self.counts_box.count():
            item = self.counts_box.takeAt(0)
            w = item.widget() if item is not None else None
            if w is not None:
                w.deleteLater()
        keep = str(self.filter.currentData() or ALL)
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem(f"All events ({len(listing.rows):,})", ALL)
        for status in Status:
            n = listing.counts.get(status, 0)
            if not n:
                continue
            name, color = STATUS_LOOK[status]
            chip = QLabel()
            chip.setObjectName(f"count-{status.value}")
            chip.setToolTip(label(status))
            chip.setText(
                f'<span style="color:{self.theme.colors[color]}; font-weight:600">{n:,}</span>'
                f" {SHORT[status].lower()}"
            )
            self.counts_box.addWidget(chip)
            icon = themed_icon(name, self.theme.colors[color])
            self.filter.addItem(icon, f"{SHORT[status]} ({n:,})", status.value)
        self.filter.setCurrentIndex(max(self.filter.findData(keep), 0))
        self.filter.blockSignals(False)
        self.model.set_filter(str(self.filter.currentData() or ALL))

    def _filter_changed(self, index: int) -> None:
        self.model.set_filter(str(self.filter.itemData(index) or ALL))
        if self.model.rowCount():
            self.table.selectRow(0)
        else:
            self._show_row(None)

    def set_filter(self, status: str) -> None:
        """Show only the events of `status` ("" for all)."""
        i = self.filter.findData(status)
        self.filter.setCurrentIndex(max(i, 0))

    def _selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = selected.indexes()
        self._show_row(self.model.row_at(rows[0].row()) if rows else None)

    def _show_row(self, r: EvidenceRow | None) -> None:
        if r is None:
            self.detail_title.setText("Select an event to see its evidence.")
            self.span.setPlainText("")
            self.excerpt.setText("")
            return
        where = "" if r.file_sha256 is None else "<br>" + html.escape(display_text(where_text(r)))
        self.detail_title.setText(
            f"<b>{html.escape(display_text(r.event_id))}</b> · {method_label(r.method)} · "
            f"{format_micro(r.amount_micro)} earned · {html.escape(label(r.status))}{where}"
            + (f" — {html.escape(display_text(r.local_path))}" if r.local_path else "")
        )
        if r.span is not None:
            self.span.setHtml(self.span_html(r))
        elif r.status == Status.ASSERTED:
            self.span.setPlainText(
                "No checkable evidence: the operator asserts this attribution "
                f"({method_label(r.method).lower()})."
            )
        elif r.offset is None and r.file_sha256 is not None:
            self.span.setPlainText("The evidence names the whole file (no span to show).")
        elif r.status == Status.CHANGED:
            self.span.setPlainText(
                "Your copy of this file changed since you submitted it: the span cannot be "
                "checked or shown from it."
            )
        elif r.status == Status.MISSING:
            self.span.setPlainText(
                "The file is not on this computer (moved or deleted): the span cannot be checked."
            )
        elif r.status == Status.NOT_IN_CONTRIBUTION:
            self.span.setPlainText(
                "No file of your contribution has this SHA-256: the registry names a file you "
                "did not contribute."
            )
        else:
            self.span.setPlainText("The span is not text (binary bytes).")
        self.excerpt.setText(
            f"Model output quoted by the operator: “{display_text(r.excerpt)}”" if r.excerpt else ""
        )

    def span_html(self, r: EvidenceRow) -> str:
        """The span's lines from the local file, numbered, the span itself highlighted."""
        c = self.theme.colors
        mark = f"background:{c['selection']}; color:{c['text']}; font-weight:600"
        gutter = f"color:{c['muted']}"
        span = (r.span or "") + (" …" if r.span_truncated else "")
        parts = [(r.before, False), (span, True), (r.after, False)]
        lines: list[str] = [""]
        for text, marked in parts:
            for i, piece in enumerate(text.split("\n")):
                if i:
                    lines.append("")
                if piece:
                    esc = html.escape(display_text(piece))
                    lines[-1] += f'<span style="{mark}">{esc}</span>' if marked else esc
        first = r.line or 1
        width = len(f"{first + len(lines) - 1:,}")
        body = "<br>".join(
            f'<span style="{gutter}">{f"{first + i:,}".rjust(width).replace(" ", "&nbsp;")}'
            f"&nbsp;│&nbsp;</span>{line}"
            for i, line in enumerate(lines)
        )
        return f'<div style="font-family:monospace; white-space:pre-wrap">{body}</div>'
