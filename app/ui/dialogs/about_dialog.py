"""Help ▸ About: the version, the registry in use, and the licenses of the bundled components
(Qt/PySide6 under the LGPL among them), so a user can see what they run and under which terms."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import APP_ID, APP_NAME, __version__
from app.services.components import Component, bundled_components
from app.ui.resources import resources_dir


class AboutDialog(QDialog):
    """Version, registry and component licenses; the table is read once, when opened."""

    def __init__(
        self,
        registry_url: str,
        parent: QWidget | None = None,
        components: list[Component] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"About {APP_NAME}")
        self.setObjectName("aboutDialog")
        self.resize(620, 520)
        found = bundled_components(resources_dir()) if components is None else components
        rows = [c for c in found if c.name != APP_ID]  # the app itself is the heading
        layout = QVBoxLayout(self)
        heading = QLabel(f"<h2>{APP_NAME} {__version__}</h2>")
        heading.setObjectName("aboutVersion")
        layout.addWidget(heading)
        summary = QLabel(
            "Catalogue, sign and upload your datasets; see which models use them and "
            "what they earn. Licensed under the Apache License 2.0."
        )
        summary.setWordWrap(True)
        layout.addWidget(summary)
        registry = QLabel(f"Registry in use: <b>{registry_url or 'none configured'}</b>")
        registry.setObjectName("aboutRegistry")
        registry.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(registry)
        layout.addWidget(QLabel(f"Third-party components ({len(rows)}) and their licenses:"))
        self.table = QTableWidget(len(rows), 3, self)
        self.table.setObjectName("aboutComponents")
        self.table.setHorizontalHeaderLabels(["Component", "Version", "License"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        for row, component in enumerate(rows):
            for col, text in enumerate((component.name, component.version, component.license)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, col, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        if not rows:
            layout.addWidget(QLabel("The component list is missing from this installation."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _cell(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text() if item is not None else ""

    def component_names(self) -> list[str]:
        return [self._cell(r, 0) for r in range(self.table.rowCount())]

    def license_of(self, name: str) -> str:
        for r in range(self.table.rowCount()):
            if self._cell(r, 0) == name:
                return self._cell(r, 2)
        raise KeyError(name)
