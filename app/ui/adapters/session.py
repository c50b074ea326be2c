"""The QApplication and the window's owner: shared by the GUI entry point (app.ui.app), the
self-test and the screenshot tool."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from app.services.context import ServiceContext
    from app.services.identity import IdentityInfo
    from app.ui.main_window import MainWindow

log = logging.getLogger(__name__)


def ensure_app(argv: list[str] | None = None) -> QApplication:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from app import APP_ID, APP_NAME, __version__

    existing = QCoreApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QApplication.setApplicationName(APP_NAME)
    QApplication.setOrganizationName(APP_ID)
    QApplication.setApplicationVersion(__version__)
    QApplication.setDesktopFileName(APP_ID)
    return QApplication(argv if argv is not None else sys.argv[:1])


class GuiSession:
    """Owns the window across theme changes (the window is rebuilt with the new colours)."""

    def __init__(self, ctx: ServiceContext, app: QApplication, debug: bool) -> None:
        from app.ui.adapters.services import Services
        from app.ui.errors import setup_file_logging

        self.ctx = ctx
        self.app = app
        self.log_path = setup_file_logging(ctx.log_dir, debug)
        self.services = Services(ctx)
        self.window: MainWindow | None = None
        self.demo: Any = None

    def build_window(self, page: str | None = None) -> MainWindow:
        from app.settings import THEME
        from app.ui.main_window import MainWindow
        from app.ui.resources import app_icon
        from app.ui.theme import apply_theme

        theme = apply_theme(self.app, self.ctx.settings.get(THEME))
        self.app.setWindowIcon(app_icon())
        old = self.window
        if old is not None:
            old.save_state()
        window = MainWindow(self.services, theme, log_path=self.log_path, defer_catalogue=True)
        window.themeChangeRequested.connect(lambda _c: self.rebuild("settings"))
        if self.demo is not None:
            window.set_demo(self.demo.url)
        if page:
            window.show_page(page)
        self.window = window
        return window

    def rebuild(self, page: str | None = None) -> None:
        """Show the re-themed window first, then retire the old one (the app must not quit)."""
        old = self.window
        self.build_window(page).show()
        if old is not None:
            old.close()
            old.deleteLater()

    def follow_os_scheme(self) -> None:
        from app.settings import THEME

        if self.ctx.settings.get(THEME) == "system":
            page = self.window.current_page() if self.window else None
            self.rebuild(page)

    def stop(self) -> None:
        if self.demo is not None:
            self.demo.stop()
            self.demo = None

    def maybe_first_run(self) -> None:
        window = self.window
        if window is None or not window.first_run_needed():
            return

        def decide(info: IdentityInfo | None) -> None:
            if info is None and self.window is not None:
                self.window.show_first_run()

        window.runner.start(
            self.services.current_identity, on_result=decide, on_error=lambda _e: None
        )
