"""Small reusable widgets: page header, empty state, state pill delegate."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QSplitterHandle,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.adapters.catalogue_model import COL_STATE, COL_TITLE, IsChildRole, ItemRole
from app.ui.resources import render_svg, themed_icon
from app.ui.theme import Theme

Index = QModelIndex | QPersistentModelIndex


def two_lines(grouped: str) -> str:
    """A grouped 64-hex fingerprint as two readable lines of eight groups."""
    groups = grouped.split()
    half = (len(groups) + 1) // 2
    return " ".join(groups[:half]) + "\n" + " ".join(groups[half:]) if len(groups) > 8 else grouped


def page_header(title: str, subtitle: str = "") -> tuple[QWidget, QLabel]:
    """A page title with a muted subtitle; returns (widget, subtitle label) for updates."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    t = QLabel(title)
    t.setObjectName("pageTitle")
    t.setAccessibleName(title)
    s = QLabel(subtitle)
    s.setObjectName("pageSubtitle")
    s.setWordWrap(True)
    layout.addWidget(t)
    layout.addWidget(s)
    return box, s


class _GripHandle(QSplitterHandle):
    """A splitter handle you can see: a short rounded bar, in the accent colour on hover."""

    def __init__(self, orientation: Qt.Orientation, splitter: QSplitter, theme: Theme) -> None:
        super().__init__(orientation, splitter)
        self.theme = theme
        self.setAttribute(Qt.WidgetAttribute.WA_Hover, True)

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        hovered = self.underMouse()
        color = self.theme.color("accent" if hovered else "scroll")
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        r = self.rect()
        if self.orientation() == Qt.Orientation.Horizontal:
            grip = QRect(r.center().x() - 2, r.center().y() - 24, 4, 48)
        else:
            grip = QRect(r.center().x() - 24, r.center().y() - 2, 48, 4)
        painter.drawRoundedRect(grip, 2, 2)
        painter.end()

    def enterEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().enterEvent(event)
        self.update()

    def leaveEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().leaveEvent(event)
        self.update()


class GripSplitter(QSplitter):
    """A horizontal splitter whose handle shows where to drag."""

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.theme = theme

    def createHandle(self) -> QSplitterHandle:  # noqa: N802 - Qt API
        return _GripHandle(self.orientation(), self, self.theme)


class EmptyState(QWidget):
    """Icon, headline, explanation and an optional action: what to do, not just 'nothing'."""

    def __init__(
        self,
        icon: str,
        title: str,
        text: str,
        theme: Theme,
        action_text: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(40, 40, 40, 40)
        layout.setSpacing(10)
        layout.addStretch(1)
        self.icon_label = QLabel()
        self.icon_label.setPixmap(
            render_svg(icon, 56, theme.colors["muted"], self.devicePixelRatioF())
        )
        self.icon_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel(title)
        self.title.setObjectName("emptyTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel(text)
        self.text.setObjectName("emptyText")
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setMaximumWidth(520)
        self.text.setMinimumWidth(420)
        layout.addWidget(self.icon_label)
        layout.addWidget(self.title)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.text)
        row.addStretch(1)
        layout.addLayout(row)
        self.button: QPushButton | None = None
        if action_text:
            self.button = QPushButton(action_text)
            self.button.setObjectName("primary")
            self.button.setAccessibleName(action_text)
            brow = QHBoxLayout()
            brow.addStretch(1)
            brow.addWidget(self.button)
            brow.addStretch(1)
            layout.addSpacing(6)
            layout.addLayout(brow)
        layout.addStretch(2)
        self.setAccessibleName(title)


class CatalogueDelegate(QStyledItemDelegate):
    """Paints state pills and the indented, marked titles of grouped annotation sets."""

    ROW_HEIGHT = 34
    INDENT = 22

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme = theme
        self._icons: dict[tuple[str, str], QIcon] = {}

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width() + 16, self.ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        col = index.column()
        if col == COL_STATE:
            self._paint_background(painter, option, index)
            self._paint_pill(painter, option.rect, str(index.data() or ""))
            return
        if col == COL_TITLE:
            self._paint_title(painter, option, index)
            return
        option.rect = option.rect.adjusted(6, 0, -6, 0)
        super().paint(painter, option, index)

    def _paint_title(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        self._paint_background(painter, option, index)
        child = bool(index.data(IsChildRole))
        item = index.data(ItemRole)
        kind = str(getattr(item, "kind", "dataset"))
        rect = option.rect.adjusted(10, 0, -6, 0)
        painter.save()
        if child:
            painter.setPen(self.theme.color("muted"))
            painter.drawText(
                QRect(rect.left(), rect.top(), self.INDENT, rect.height()),
                int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                "↳",
            )
            rect = rect.adjusted(self.INDENT - 4, 0, 0, 0)
        icon_name = "annotation" if kind == "annotation" else "dataset"
        color = self.theme.colors["accent"] if kind == "dataset" else self.theme.colors["warning"]
        key = (icon_name, color)
        if key not in self._icons:
            self._icons[key] = themed_icon(icon_name, color)
        icon_rect = QRect(rect.left(), rect.center().y() - 8 + 1, 16, 16)
        self._icons[key].paint(painter, icon_rect)
        text_rect = rect.adjusted(24, 0, 0, 0)
        painter.setPen(opt.palette.color(QPalette.ColorRole.Text))
        text = opt.fontMetrics.elidedText(
            str(index.data() or ""), Qt.TextElideMode.ElideRight, text_rect.width()
        )
        painter.drawText(
            text_rect, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text
        )
        painter.restore()

    def _paint_background(
        self, painter: QPainter, option: QStyleOptionViewItem, index: Index
    ) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)

    def _paint_pill(self, painter: QPainter, rect: QRect, text: str) -> None:
        color = self.theme.state_color(text.lower())
        fm = painter.fontMetrics()
        w = fm.horizontalAdvance(text) + 18
        h = 20
        pill = QRect(rect.left() + 8, rect.center().y() - h // 2 + 1, w, h)
        fill = QColor(color)
        fill.setAlpha(40 if not self.theme.dark else 60)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(pill, h / 2, h / 2)
        painter.setPen(color)
        painter.drawText(pill, int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()
