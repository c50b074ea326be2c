"""`contributor-desk --self-test`: open the real main window offscreen and add a dataset.

Everything happens in a throwaway data folder with an in-memory keyring installed for this
process only, so the user's catalogue and keyring are never touched. Steps:
  1. open the main window (offscreen) and paint it;
  2. add a generated dataset through the import dialog and the real CatalogueService;
  3. create a throwaway identity and sign the item;
  4. submit it to an embedded registry (a child process on loopback, its own database) and
     wait until the registry has accepted it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keyring.backend import KeyringBackend

from app.domain.states import State

DECIDED = (State.ACCEPTED, State.REJECTED)  # what the registry answers a submission
STEP_TIMEOUT_S = 60.0


class SelfTestKeyring(KeyringBackend):
    """Process-local secrets for the self-test: nothing reaches the user's keyring."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring's base is untyped
        self._secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._secrets.pop((service, username), None)


class SelfTestFailed(Exception):
    pass


def _wait(app: object, done: Callable[[], bool], what: str) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise SelfTestFailed(f"timed out waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.01)


def run_self_test(*, debug: bool = False) -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    import keyring
    from PySide6.QtCore import qInstallMessageHandler

    def quiet(mode: Any, context: Any, message: str) -> None:
        if "propagateSizeHints" not in message:  # the offscreen plugin's harmless note
            print(message, file=sys.stderr)

    qInstallMessageHandler(quiet)
    previous_keyring = keyring.get_keyring()
    keyring.set_keyring(SelfTestKeyring())
    try:
        with tempfile.TemporaryDirectory(prefix="contributor-desk-self-test-") as tmp:
            return _run(Path(tmp), debug)
    except SelfTestFailed as exc:
        print(f"self-test: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        keyring.set_keyring(previous_keyring)


def _run(tmp: Path, debug: bool) -> int:
    from app.services.context import ServiceContext
    from app.ui.adapters.session import GuiSession, ensure_app
    from app.ui.devtools.sample_data import write_air_quality

    started = time.monotonic()
    app = ensure_app()
    demo = _start_registry(tmp / "registry")
    # Never a real registry: the embedded one, or an unroutable address if it cannot start.
    url = demo.url if demo is not None else "http://127.0.0.1:9"
    ctx = ServiceContext(tmp / "data", registry_url=url)
    try:
        session = GuiSession(ctx, app, debug)
        window = session.build_window()
        window.show()
        _wait(app, lambda: window.isVisible(), "the main window")
        window.grab()  # forces a real paint
        print(f"self-test: main window painted ({window.width()}x{window.height()})")

        dataset = write_air_quality(tmp / "air-quality")
        dialog = window.open_import([dataset])
        _wait(
            app, lambda: dialog.preview is not None or "cannot" in dialog.status.text(), "preview"
        )
        if dialog.preview is None or not dialog.preview.usable:
            raise SelfTestFailed(f"preview failed: {dialog.status.text()}")
        dialog.start_add()
        _wait(app, lambda: dialog.result_item is not None or not dialog.hashing, "hashing")
        item = dialog.result_item
        if item is None:
            raise SelfTestFailed(f"adding failed: {dialog.status.text()}")
        _wait(app, lambda: window.catalogue.model.total == 1, "the catalogue to show the item")
        print(
            f"self-test: added #{item.id} “{item.title}”: {item.format}, "
            f"{item.record_count} records, {item.file_count} files, root {item.manifest_root[:16]}…"
        )

        services = session.services
        info = services.identity.init()
        result = services.signing.sign_item(
            item.id, registry_url=ctx.registry_url, datanet="open-data"
        )
        print(f"self-test: signed with {info.grouped[:19]}… (envelope #{result.envelope_id})")
        if demo is None:
            raise SelfTestFailed("the embedded registry did not start")
        submitted = services.uploads.submit(item.id)
        print(f"self-test: submitted to {url}: {submitted.message or submitted.state}")
        _wait(
            app,
            lambda: str(services.catalogue.get(item.id).summary.state) in DECIDED,
            "the registry's decision",
        )
        detail = services.catalogue.get(item.id)
        if str(detail.summary.state) != State.ACCEPTED:
            raise SelfTestFailed(f"the registry rejected it: {detail.rejection_reasons}")
        print(f"self-test: accepted by the registry as {detail.registry_id}")
        window.close()
        app.processEvents()
        print(f"self-test: OK in {time.monotonic() - started:.1f} s")
        return 0
    finally:
        ctx.close()
        if demo is not None:
            demo.stop()


def _start_registry(folder: Path) -> Any:
    try:
        from app.services.demo import start_demo_registry

        return start_demo_registry(folder)
    except Exception as exc:
        print(f"self-test: embedded registry failed to start: {exc}", file=sys.stderr)
        return None
