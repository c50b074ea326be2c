"""What the catalogue page's action adapters share: the services, the task runner, the error
presenter, the theme, the catalogue page they act on and the window their dialogs belong to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from app.ui.adapters.services import Services
    from app.ui.adapters.tasks import TaskRunner
    from app.ui.errors import ErrorPresenter
    from app.ui.pages.catalogue_view import CatalogueView
    from app.ui.theme import Theme


@dataclass(frozen=True)
class ActionContext:
    services: Services
    runner: TaskRunner
    errors: ErrorPresenter
    theme: Theme
    catalogue: CatalogueView
    window: QWidget


class CatalogueActions(QObject):
    """An adapter owned by the window, acting on the catalogue page."""

    def __init__(self, context: ActionContext) -> None:
        super().__init__(context.window)
        self.services = context.services
        self.runner = context.runner
        self.errors = context.errors
        self.theme = context.theme
        self.catalogue = context.catalogue
        self._parent = context.window
