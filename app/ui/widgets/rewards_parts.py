"""Small parts of the Rewards page: value tiles, tables with exact-amount tooltips, titled
boxes, and the texts the page shows for amounts and verification."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from app.domain.money import format_micro
from app.services.rewards import ContributionRewards
from app.services.transparency import LogStatus
from app.ui.theme import Theme
from app.ui.widgets.time_plot import DAY_SECONDS


def tile(title: str, theme: Theme) -> tuple[QFrame, QLabel, QLabel]:
    frame = QFrame()
    frame.setObjectName("rewardTile")
    frame.setStyleSheet(
        f"#rewardTile {{ background: {theme.colors['surface']};"
        f" border: 1px solid {theme.colors['border']}; border-radius: 8px; }}"
    )
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 10, 14, 10)
    layout.setSpacing(2)
    caption = QLabel(title)
    caption.setObjectName("tileCaption")
    caption.setStyleSheet(f"color: {theme.colors['muted']};")
    value = QLabel("—")
    value.setStyleSheet(f"color: {theme.colors['text']}; font-size: 20px; font-weight: 600;")
    note = QLabel("")
    note.setStyleSheet(f"color: {theme.colors['muted']};")
    for label in (caption, value, note):
        # Four tiles share the page's width: a long note is cut at the tile's edge rather
        # than making the page wider than a 1024-pixel window.
        label.setMinimumWidth(1)
        layout.addWidget(label)
    return frame, value, note


def table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    header = table.horizontalHeader()
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for col in range(1, len(headers)):
        header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
    return table


def contribution_label(c: ContributionRewards) -> str:
    return c.title if c.item_id is None else f"#{c.item_id}  {c.title}"


def fill(
    table: QTableWidget,
    rows: list[tuple[str, ...]],
    keys: list[str] | None = None,
    tips: list[tuple[str, ...]] | None = None,
) -> None:
    """Rows of text; `tips` per cell ("" for none): the exact amount behind a rounded one, what
    a method means, a name too long for its column."""
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            if c == 0 and keys is not None:
                item.setData(Qt.ItemDataRole.UserRole, keys[r])
            if c > 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            tip = tips[r][c] if tips is not None else ""
            item.setToolTip(tip or (text if c == 0 else ""))
            table.setItem(r, c, item)


def titled(title: str, widget: QWidget) -> tuple[QWidget, QLabel]:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(6)
    label = QLabel(title)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    layout.addWidget(label)
    layout.addWidget(widget, 1)
    return box, label


def exact(micro: int, unit: str) -> str:
    return f"{format_micro(micro, unit=unit)} exactly"


def log_state_text(log: LogStatus | None) -> str:
    """What the page says about verification: verified up to a checkpoint, pending, failed."""
    if log is None:
        return "Not verified: this registry serves no transparency log"
    if log.failure is not None:
        return f"Verification FAILED: {log.failure}"
    if log.checkpoint_size is None:
        return "Pending: not verified yet"
    text = f"Verified up to checkpoint {log.checkpoint_size:,}"
    return text + (f" ({log.pending:,} entries pending)" if log.pending else "")


def bar_centre(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp() + DAY_SECONDS / 2


def help_button(colors: dict[str, str], name: str, text: str) -> QToolButton:
    """A small round '?' that shows `text` when hovered or clicked (keyboard too)."""
    button = QToolButton()
    button.setText("?")
    button.setAutoRaise(True)
    button.setFixedSize(18, 18)
    button.setStyleSheet(
        f"QToolButton {{ padding: 0px; margin: 0px; border: 1px solid {colors['border']};"
        f" border-radius: 9px; color: {colors['muted']}; font-size: 11px;"
        " font-weight: 600; }"
    )
    button.setAccessibleName(name)
    button.setToolTip(text)
    button.clicked.connect(lambda: QToolTip.showText(QCursor.pos(), text, button))
    return button


def with_help(box: QWidget, title: QLabel, button: QToolButton) -> None:
    """`button` right after the title of a `titled` box."""
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(4)
    layout = box.layout()
    assert isinstance(layout, QVBoxLayout)
    layout.removeWidget(title)
    row.addWidget(title)
    row.addWidget(button)
    row.addStretch(1)
    layout.insertLayout(0, row)


def ask_chart_path(parent: QWidget, which: str) -> Path | None:
    """Where to export the chart `which` (a .png or .svg name), or None if cancelled."""
    path, chosen = QFileDialog.getSaveFileName(
        parent, "Export chart", f"{which}-chart.png", "PNG image (*.png);;SVG image (*.svg)"
    )
    if not path:
        return None
    if Path(path).suffix.lower() not in (".png", ".svg"):
        path += ".svg" if "svg" in chosen.lower() else ".png"
    return Path(path)


def mark_verified(table: QTableWidget, log: LogStatus | None) -> None:
    """Each contribution row (id in column 0, entries in column 2) says whether its entries
    are verified, pending or failed."""
    for row in range(table.rowCount()):
        first = table.item(row, 0)
        entries = table.item(row, 2)
        if first is None or entries is None:
            continue
        cid = first.data(Qt.ItemDataRole.UserRole)
        state = log.contribution_state(str(cid)) if log is not None else "unverified"
        if log is not None and state == "verified" and log.checkpoint_size is not None:
            detail = f"verified up to checkpoint {log.checkpoint_size:,}"
        else:
            detail = state
        mark = {"verified": "✓", "pending": "…", "failed": "✗"}.get(state, "")
        entries.setText(f"{entries.text()} {mark}".strip())
        entries.setToolTip(f"{entries.toolTip()}\n{detail}".strip())
