"""Rewards page: an honest empty state until usage/rewards sync exists (its own issue).

pyqtgraph is imported only when there is something to chart, never for the first paint.
"""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.ui.theme import Theme
from app.ui.widgets import EmptyState, page_header


class RewardsView(QWidget):
    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        layout.setSpacing(14)
        header, _ = page_header(
            "Rewards", "Which models used your data, how, and what it earned you"
        )
        layout.addWidget(header)
        self.empty = EmptyState(
            "rewards",
            "No usage yet",
            "Usage and rewards appear here after your first accepted contribution syncs. "
            "They are kept on this computer, so you can review them offline.",
            theme,
        )
        layout.addWidget(self.empty, 1)
