"""Opening a contribution's Evidence view: from the detail pane's "Evidence…" button, from the
catalogue table's context menu, or with Ctrl+Shift+E on the catalogue page.

The listing (the events with their evidence re-checked against the local files) is read on the
task runner; the window opens when it is ready. One window per contribution: asking again
refreshes and raises it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence

from app.ui.adapters.catalogue_actions import ActionContext, CatalogueActions

if TYPE_CHECKING:
    from app.services.evidence_review import EvidenceListing
    from app.ui.dialogs.evidence_dialog import EvidenceDialog

SHORTCUT = "Ctrl+Shift+E"


class EvidenceActions(CatalogueActions):
    opened = Signal(object)  # the EvidenceDialog, once filled (tests, screenshots)

    def __init__(self, context: ActionContext) -> None:
        super().__init__(context)
        catalogue = context.catalogue
        self.windows: dict[int, EvidenceDialog] = {}
        catalogue.detail.evidenceRequested.connect(self.open)
        self.action = QAction("Evidence…", catalogue)
        self.action.setShortcut(QKeySequence(SHORTCUT))
        self.action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.action.setToolTip("The events behind the selected contribution's rewards")
        self.action.triggered.connect(self._open_current)
        catalogue.addAction(self.action)
        table = catalogue.table
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        table.addAction(self.action)

    def _open_current(self) -> None:
        item_id = self.catalogue.current_id()
        if item_id is not None:
            self.open(item_id)

    def open(self, item_id: int) -> None:
        # Imported here: the dialog's module loads SQLAlchemy, which the first paint must not.
        from app.ui.dialogs.evidence_dialog import EvidenceDialog

        def done(listing: EvidenceListing) -> None:
            window = self.windows.get(item_id)
            if window is None:
                window = self.windows[item_id] = EvidenceDialog(
                    self.theme, self._parent, recheck=lambda: self.open(item_id)
                )
                window.finished.connect(lambda _r: self.windows.pop(item_id, None))
            window.show_listing(listing)
            window.show()
            window.raise_()
            window.activateWindow()
            self.opened.emit(window)

        self.runner.start(
            self.services.rewards.evidence, item_id, on_result=done, on_error=self.errors.show
        )
