"""GUI test fixtures: offscreen Qt, an isolated data dir and keyring, a real main window.

QT_QPA_PLATFORM is set by the session fixture pytest-qt's `qapp` depends on (`qapp_args`),
so it is in place before the QApplication exists — no global patching at configure time.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.services.context import ServiceContext


@pytest.fixture(scope="session")
def qapp_args() -> Iterator[list[str]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("QT_QPA_PLATFORM", "offscreen")
    mp.setenv("QT_LOGGING_RULES", "qt.qpa.*=false")
    yield ["contributor-desk-tests"]
    mp.undo()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo the app's file logging (a root handler and level) so later tests are unaffected."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {h: h.level for h in handlers}
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler, old in levels.items():
            handler.setLevel(old)
        root.setLevel(level)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dead_registry() -> str:
    """A loopback URL nothing listens on (connection refused, fast)."""
    return f"http://127.0.0.1:{free_port()}"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path == "/v1/health":
            body = b'{"status":"ok","version":"test"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def health_stub() -> Iterator[str]:
    """A stub that answers /v1/health only: enough for the connection test and the status
    bar, nothing else (flows that talk to the registry use the real one)."""
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def ctx(data_dir: Path, isolated_keyring: Path, dead_registry: str) -> Iterator[ServiceContext]:
    context = ServiceContext(data_dir, registry_url=dead_registry)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def services(ctx: ServiceContext) -> Any:
    from app.ui.adapters.services import Services

    return Services(ctx)


@pytest.fixture(scope="session")
def theme(qapp: Any) -> Any:
    """Applied once: restyling the whole application per test is slow and pointless."""
    from app.ui.theme import apply_theme

    return apply_theme(qapp, "light")


@pytest.fixture
def window(qtbot: Any, services: Any, theme: Any) -> Iterator[Any]:
    from app.ui.main_window import MainWindow

    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.runner.cancel_all()
    win.runner.wait(20_000)


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "city_air_quality"
    folder.mkdir()
    rows = ["date,station,pm25"] + [f"2026-01-{1 + i % 28:02d},Centre,{i}.5" for i in range(50)]
    (folder / "measurements.csv").write_text("\n".join(rows) + "\n", "utf-8")
    return folder


def add_item(services: Any, folder: Path, **kw: Any) -> Any:
    from app.services.catalogue import ImportRequest

    return services.catalogue.add(ImportRequest(paths=[folder], **kw))


def make_csv(folder: Path, name: str = "data.csv", rows: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["a,b"] + [f"{i},{name}" for i in range(rows)]
    (folder / name).write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def accept_review(qtbot: Any, window: Any) -> Any:
    """Submit and Sign open the review sheet first: wait for it and press its main button."""
    qtbot.waitUntil(lambda: window.item_actions.sheet is not None, timeout=20_000)
    sheet = window.item_actions.sheet
    assert sheet.go_button.isEnabled(), sheet.rules.text()
    from PySide6.QtCore import Qt

    qtbot.mouseClick(sheet.go_button, Qt.MouseButton.LeftButton)
    return sheet
