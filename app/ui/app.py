"""GUI entry point: `run_gui(ctx, demo=, self_test=, debug=)`, called by app.cli.main.

Builds the QApplication (Fusion, themed palette), file logging, the crash-dialog excepthook,
the main window, the optional demo registry and the first-run wizard.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from app.services.context import ServiceContext
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
        from app.ui.errors import setup_file_logging
        from app.ui.services import Services

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
        if window is None or not self.services.identity_available or not window.first_run_needed():
            return

        def decide(info: Any) -> None:
            if info is None and self.window is not None:
                self.window.show_first_run()

        window.runner.start(
            self.services.current_identity, on_result=decide, on_error=lambda _e: None
        )


def run_gui(ctx: ServiceContext, *, demo: bool, self_test: bool, debug: bool) -> int:
    if self_test:
        from app.ui.self_test import run_self_test

        return run_self_test(debug=debug)
    app = ensure_app()
    from PySide6.QtGui import QGuiApplication

    from app.ui.errors import install_excepthook

    demo_registry = _start_demo_registry(ctx) if demo else None
    own_ctx = None
    if demo_registry is not None:
        # Everything (submissions included) talks to the embedded registry in demo mode.
        from app.services.context import ServiceContext

        own_ctx = ServiceContext(ctx.data_dir, registry_url=demo_registry.url)
        ctx = own_ctx
    session = GuiSession(ctx, app, debug)
    session.demo = demo_registry
    if demo_registry is not None:
        session.services.demo_seed = demo_registry.seed
    window = session.build_window()
    install_excepthook(lambda: session.window.errors if session.window else None)
    QGuiApplication.styleHints().colorSchemeChanged.connect(lambda _s: session.follow_os_scheme())
    app.aboutToQuit.connect(session.stop)
    wake = _quit_on_terminal_signals(app)
    window.show()
    # Long-lived startup objects (Qt wrappers, SQLAlchemy metadata) leave the cyclic GC's
    # view, so later collections stay short and never stall the GUI thread noticeably.
    gc.collect()
    gc.freeze()
    session.maybe_first_run()
    try:
        return int(app.exec())
    finally:
        wake.stop()
        session.stop()
        if own_ctx is not None:
            own_ctx.close()


def _quit_on_terminal_signals(app: Any) -> Any:
    """Ctrl+C in the terminal of `make run`, or SIGTERM from a session manager, quits cleanly
    (queue state saved, demo registry stopped). Qt's event loop does not run Python signal
    handlers by itself, so a cheap timer hands control back to Python four times a second."""
    import signal

    from PySide6.QtCore import QTimer

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: app.quit())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    return wake


def _start_demo_registry(ctx: ServiceContext) -> Any:
    """The embedded demo registry (a child process on loopback), or None if it cannot start:
    the status bar then shows the configured registry's real state, never a fake 'demo'."""
    try:
        from app.services.demo import start_demo_registry

        return start_demo_registry(ctx.data_dir)
    except Exception as exc:
        log.warning("demo registry did not start: %s", exc)
        sys.stderr.write(f"warning: the demo registry did not start: {exc}\n")
        return None
