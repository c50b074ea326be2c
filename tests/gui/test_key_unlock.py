"""Unlocking a key kept in the encrypted key file, from the GUI, against the real registry.

The key lives in identity.key (no keyring); sync, sign, submit and rotate must ask for its
passphrase in the unlock dialog, re-ask on a wrong one, stop cleanly on Cancel, remember it
for the session when asked to, and report an unreachable registry as offline, never as a
locked key.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.domain.errors import RegistryUnavailable
from app.services.context import ServiceContext
from app.ui.adapters.services import Services
from app.ui.main_window import MainWindow
from tests.gui.conftest import accept_review, add_item, make_csv
from tests.integration.faults.helpers import start_registry
from tests.support.registry_server import RegistryProcess

PASS = "correct horse battery staple"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path_factory.mktemp("unlock-registry"))
    try:
        yield proc
    finally:
        proc.kill(signal.SIGTERM)


def _window(qtbot: Any, services: Services, theme: Any) -> MainWindow:
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def locked(data_dir: Path, isolated_keyring: Path, registry: RegistryProcess) -> Iterator[Any]:
    """Services whose identity key is in the encrypted key file, talking to the registry."""
    ctx = ServiceContext(data_dir, registry_url=registry.base_url)
    services = Services(ctx)
    info = services.identity.init(PASS, use_key_file=True)
    assert info.storage == "encrypted-file"
    try:
        yield services
    finally:
        ctx.close()


def _dialog(qtbot: Any, win: MainWindow) -> Any:
    qtbot.waitUntil(
        lambda: win.unlocker.dialog is not None and win.unlocker.dialog.isVisible(),
        timeout=20_000,
    )
    return win.unlocker.dialog


def _enter(qtbot: Any, dialog: Any, passphrase: str, *, remember: bool = False) -> None:
    dialog.passphrase.clear()
    qtbot.keyClicks(dialog.passphrase, passphrase)
    dialog.remember.setChecked(remember)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)


def _capture_errors(win: MainWindow) -> list[BaseException]:
    shown: list[BaseException] = []
    win.errors.show = lambda exc, title="": shown.append(exc)  # type: ignore[method-assign]
    return shown


def test_sync_asks_rejects_a_wrong_passphrase_then_remembers_the_key(
    qtbot: Any, locked: Services, theme: Any
) -> None:
    win = _window(qtbot, locked, theme)
    errors = _capture_errors(win)
    win.sync_action.trigger()  # F5
    dialog = _dialog(qtbot, win)
    assert "sync usage and rewards" in dialog.findChild(type(dialog.error), "sectionTitle").text()
    assert "identity.key" in dialog.explanation.text()  # the file name; its path in the tooltip
    assert not dialog.remember.isChecked()

    _enter(qtbot, dialog, "not the passphrase")
    qtbot.waitUntil(lambda: dialog.error.isVisibleTo(dialog) and dialog.isEnabled(), timeout=20_000)
    assert win.unlocker.dialog is dialog and dialog.isVisible()  # asked again, same dialog
    assert "does not open your key file" in dialog.error.text()
    assert errors == []  # a wrong passphrase is not an error dialog

    _enter(qtbot, dialog, PASS, remember=True)
    qtbot.waitUntil(lambda: win.sync_label.text().startswith("Last sync: "), timeout=30_000)
    assert win.sync_label.text() not in ("Last sync: failed", "Last sync: key locked")
    assert errors == [] and win.unlocker.dialog is None and win.unlocker.remembered

    # Remembered for this session: the next sync does not ask.
    win.sync_label.setText("…")
    win.sync_action.trigger()  # F5
    qtbot.waitUntil(lambda: win.sync_label.text().startswith("Last sync: "), timeout=30_000)
    assert win.unlocker.dialog is None and errors == []


def test_without_remember_every_action_asks_again(qtbot: Any, locked: Services, theme: Any) -> None:
    win = _window(qtbot, locked, theme)
    errors = _capture_errors(win)
    for _ in range(2):
        win.sync_label.setText("…")
        win.sync_action.trigger()  # F5
        _enter(qtbot, _dialog(qtbot, win), PASS, remember=False)
        qtbot.waitUntil(lambda: win.sync_label.text().startswith("Last sync: "), timeout=30_000)
        assert not win.unlocker.remembered
    assert errors == []


def test_after_a_restart_the_last_sync_is_shown_and_the_locked_key_named(
    qtbot: Any, locked: Services, theme: Any
) -> None:
    """The automatic sync at start never asks for the passphrase; the status bar still says
    when the data shown was synced, and why it is not refreshed."""
    import re

    win = _window(qtbot, locked, theme)
    win.sync_action.trigger()  # F5
    _enter(qtbot, _dialog(qtbot, win), PASS, remember=False)
    qtbot.waitUntil(
        lambda: re.fullmatch(r"Last sync: \d\d:\d\d", win.sync_label.text()) is not None,
        timeout=30_000,
    )
    synced = win.sync_label.text()
    win.runner.wait(20_000)
    win.close()

    again = _window(qtbot, locked, theme)
    assert again.sync_label.text() == "Last sync: never"  # before anything is read
    again.rewards_sync.auto_sync()  # what the start does
    qtbot.waitUntil(
        lambda: again.sync_label.text() == f"{synced} · key locked (F5 to sync)", timeout=10_000
    )
    assert again.unlocker.dialog is None and not again.rewards_sync.syncing


def test_cancel_ends_the_sync_without_an_error(qtbot: Any, locked: Services, theme: Any) -> None:
    win = _window(qtbot, locked, theme)
    errors = _capture_errors(win)
    win.sync_action.trigger()  # F5
    dialog = _dialog(qtbot, win)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: win.sync_label.text() == "Last sync: never · key locked", timeout=10_000
    )
    assert errors == [] and win.unlocker.dialog is None
    assert "key stays locked" in win.statusBar().currentMessage()
    assert not win.rewards_sync.syncing  # a new sync can start
    win.sync_action.trigger()  # F5
    _dialog(qtbot, win).reject()


def test_offline_is_reported_as_offline_not_as_a_locked_key(
    qtbot: Any, data_dir: Path, isolated_keyring: Path, dead_registry: str, theme: Any
) -> None:
    ctx = ServiceContext(data_dir, registry_url=dead_registry)
    try:
        services = Services(ctx)
        services.identity.init(PASS, use_key_file=True)
        win = _window(qtbot, services, theme)
        errors = _capture_errors(win)
        win.sync_action.trigger()  # F5
        qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
        assert win.unlocker.dialog is None  # nobody was asked for a passphrase
        assert isinstance(errors[0], RegistryUnavailable), errors
        assert "unreachable" in str(errors[0])
        assert win.registry_state == "offline"
        assert win.sync_label.text() == "Last sync: failed"
    finally:
        ctx.close()


def test_sign_from_the_detail_pane_reviews_then_unlocks(
    qtbot: Any, locked: Services, theme: Any, tmp_path: Path
) -> None:
    item = add_item(locked, make_csv(tmp_path / "s", "s.csv"), title="To sign")  # no license
    win = _window(qtbot, locked, theme)
    errors = _capture_errors(win)
    win.catalogue.select_item(item.id)
    pane = win.catalogue.detail
    qtbot.waitUntil(lambda: pane.detail is not None, timeout=5000)
    assert "choose one" in pane.f_license.text()
    qtbot.mouseClick(pane.sign_button, Qt.MouseButton.LeftButton)

    # The review sheet: no license blocks signing; its rule check ran against the registry.
    qtbot.waitUntil(lambda: win.item_actions.sheet is not None, timeout=20_000)
    sheet = win.item_actions.sheet
    assert sheet.title_value.text() == "To sign"
    assert sheet.license_value.text() == "Not chosen"
    assert sheet.datanet_value.text() == sheet.review.datanet
    assert sheet.review.rules_checked
    assert not sheet.go_button.isEnabled()
    assert "No license is chosen" in sheet.rules.text()

    # Edit details from the sheet: pick a license, save; the sheet comes back, now ready.
    qtbot.mouseClick(sheet.edit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.item_actions.editor is not None, timeout=5000)
    editor = win.item_actions.editor
    editor.title_edit.setText("Signed set")
    editor.description_edit.setPlainText("Fifty rows of a test sensor.")
    editor.license_combo.setCurrentIndex(editor.license_combo.findData("CC-BY-4.0"))
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: win.item_actions.sheet is not None and win.item_actions.sheet is not sheet,
        timeout=20_000,
    )
    sheet = win.item_actions.sheet
    assert sheet.title_value.text() == "Signed set" and sheet.license_value.text() == "CC-BY-4.0"
    assert sheet.description_value.text() == "Fifty rows of a test sensor."
    assert "Meets every rule" in sheet.rules.text()
    accept_review(qtbot, win)

    _enter(qtbot, _dialog(qtbot, win), PASS)
    qtbot.waitUntil(lambda: "Signed" in pane.result.text(), timeout=30_000)
    qtbot.waitUntil(
        lambda: pane.detail is not None and str(pane.detail.summary.state) == "signed",
        timeout=10_000,
    )
    assert pane.result.isVisible() and pane.detail.summary.id == item.id
    assert win.catalogue.current_id() == item.id  # the selection is kept
    assert pane.f_license.text() == "CC-BY-4.0" and pane.title.text() == "Signed set"
    assert pane.f_description.text() == "Fifty rows of a test sensor."
    assert errors == []

    # Verify: the result is shown in the pane too.
    qtbot.mouseClick(pane.verify_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Verified" in pane.result.text(), timeout=30_000)


def test_rotate_from_settings_asks_for_the_passphrase(
    qtbot: Any, locked: Services, theme: Any
) -> None:
    before = locked.identity.current()
    win = _window(qtbot, locked, theme)
    errors = _capture_errors(win)
    win.show_page("settings")
    win.settings_view.refresh_identity()
    qtbot.waitUntil(lambda: win.settings_view.rotate_button.isEnabled(), timeout=10_000)
    qtbot.mouseClick(win.settings_view.rotate_button, Qt.MouseButton.LeftButton)
    dialog = _dialog(qtbot, win)
    assert "rotate your key" in dialog.findChild(type(dialog.error), "sectionTitle").text()
    _enter(qtbot, dialog, "wrong wrong wrong")
    qtbot.waitUntil(lambda: "does not open" in dialog.error.text(), timeout=20_000)
    assert locked.identity.current().fingerprint == before.fingerprint  # nothing changed
    _enter(qtbot, dialog, PASS)
    qtbot.waitUntil(
        lambda: locked.identity.current().fingerprint != before.fingerprint, timeout=30_000
    )
    after = locked.identity.current()
    assert after.rotated_from == before.fingerprint
    # As `identity rotate` does: a secure keyring takes the new key, else the key file under
    # the same passphrase; either way it is usable with what the user typed.
    assert locked.identity.load_signer(PASS).public_key() is not None
    assert errors == [] and not [w for w in win.findChildren(QMessageBox) if w.isVisible()]


def test_uploads_from_an_earlier_session_wait_for_the_key_then_continue(
    qtbot: Any, data_dir: Path, isolated_keyring: Path, registry: RegistryProcess, theme: Any
) -> None:
    from app.services.submit import SubmitService

    earlier = ServiceContext(data_dir, registry_url=registry.base_url)
    try:
        Services(earlier).identity.init(PASS, use_key_file=True)
        item = add_item(
            Services(earlier), make_csv(data_dir.parent / "q", "q.csv"), title="Q", license="MIT"
        )
        result = SubmitService(earlier).submit(item.id, passphrase=PASS)  # not uploaded yet
        assert result.registry_id and str(result.state.value) in ("queued", "uploading")
    finally:
        earlier.close()

    ctx = ServiceContext(data_dir, registry_url=registry.base_url)  # the app restarted
    try:
        services = Services(ctx)
        win = _window(qtbot, services, theme)
        errors = _capture_errors(win)
        qtbot.waitUntil(
            lambda: win.queue_label.text() == "Uploads: waiting for your key", timeout=30_000
        )
        assert "Unlock key" in win.statusBar().currentMessage()
        assert str(services.catalogue.get(item.id).summary.state) != "accepted"
        win.unlock_action.trigger()
        _enter(qtbot, _dialog(qtbot, win), PASS)
        qtbot.waitUntil(
            lambda: str(services.catalogue.get(item.id).summary.state) == "accepted",
            timeout=60_000,
        )
        assert errors == []
        win.close()
    finally:
        ctx.close()
