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
    from app.services.context import ServiceContext

from app.ui.adapters.session import GuiSession as GuiSession
from app.ui.adapters.session import ensure_app as ensure_app

log = logging.getLogger(__name__)


def run_gui(ctx: ServiceContext, *, demo: bool, self_test: bool, debug: bool) -> int:
    from app.ui.devtools.display_check import require_display

    if self_test:  # the self-test runs offscreen by itself: no display needed
        from app.ui.devtools.self_test import run_self_test

        return run_self_test(debug=debug)
    require_display()  # a clear error instead of Qt aborting the process
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
        session.services.demo_seed = lambda: demo_registry.seed(_own_public_key(ctx))
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


def _own_public_key(ctx: Any) -> str | None:
    """The user's public key (owner of the demo datanet with review), if there is one yet."""
    from app.services.identity import IdentityService

    info = IdentityService(ctx).current()
    return info.public_key if info is not None else None


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
