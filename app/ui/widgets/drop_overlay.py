"""The translucent overlay shown while files are dragged over the window."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from app.ui.resources import render_svg
from app.ui.theme import Theme


class DropOverlay(QWidget):
    """Covers its parent and says what a drop will do; it never takes the drop itself."""

    def __init__(self, theme: Theme, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("dropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setAccessibleName("Drop to add to your catalogue")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 48, 48, 48)
        target = QFrame()
        target.setObjectName("dropTarget")
        inner = QVBoxLayout(target)
        inner.setSpacing(10)
        inner.addStretch(1)
        icon = QLabel()
        icon.setPixmap(render_svg("drop", 64, theme.colors["accent"], self.devicePixelRatioF()))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel("Drop to add to your catalogue")
        self.title.setObjectName("dropTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail = QLabel("")
        self.detail.setObjectName("muted")
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        inner.addWidget(icon)
        inner.addWidget(self.title)
        inner.addWidget(self.detail)
        inner.addStretch(1)
        layout.addWidget(target)
        parent.installEventFilter(self)
        self.hide()

    def show_for(self, count: int, folders: int) -> None:
        files = count - folders
        bits = []
        if folders:
            bits.append(f"{folders} folder{'s' if folders != 1 else ''}")
        if files:
            bits.append(f"{files} file{'s' if files != 1 else ''}")
        self.detail.setText(
            " and ".join(bits)
            + " — you can review formats, title and license before anything is added"
        )
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.parentWidget()
            and event.type() == QEvent.Type.Resize
            and self.isVisible()
        ):
            parent = self.parentWidget()
            if parent is not None:
                self.setGeometry(parent.rect())
        return False
