"""First-run wizard, settings, and the two kinds of error presentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QWizard

from app.domain.errors import BadInputError, RegistryUnavailable
from app.settings import REGISTRY_URL, THEME
from app.ui.errors import CrashDialog, ErrorPresenter, setup_file_logging
from app.ui.main_window import MainWindow


def test_first_run_creates_identity_and_tests_a_dead_registry(
    qtbot: Any, window: MainWindow, services: Any
) -> None:
    assert window.first_run_needed()
    wizard = window.show_first_run()
    assert wizard.isVisible()
    wizard.next()
    page = wizard.identity_page
    assert not page.isComplete()
    qtbot.mouseClick(page.go_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(page.isComplete, timeout=10_000)
    info = services.identity.current()
    assert info is not None
    assert page.fingerprint.text().split() == info.grouped.split()
    assert "keyring" in page.status.text()
    # The create button is gone: focus goes to the backup offer, not to "< Back".
    assert wizard.focusWidget() is page.backup_button
    wizard.next()
    reg = wizard.registry_page
    assert reg.url.text() == services.ctx.registry_url
    qtbot.mouseClick(reg.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "unreachable" in reg.status.text(), timeout=10_000)
    wizard.button(QWizard.WizardButton.FinishButton).click()
    assert not wizard.isVisible()
    assert not window.first_run_needed()


def test_first_run_can_be_skipped(qtbot: Any, window: MainWindow, services: Any) -> None:
    wizard = window.show_first_run()
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.CustomButton1), Qt.MouseButton.LeftButton)
    assert not wizard.isVisible()
    assert not window.first_run_needed()
    assert services.identity.current() is None


def test_first_run_restores_identity_from_backup(
    qtbot: Any, theme: Any, tmp_path: Path, isolated_keyring: Path
) -> None:
    """The backup written on one computer is what the wizard restores on another."""
    from app.services.context import ServiceContext
    from app.services.identity import IdentityService
    from app.signing.identity import fingerprint
    from app.ui.adapters.services import Services

    old_ctx = ServiceContext(tmp_path / "old-computer")
    original = IdentityService(old_ctx).init()
    backup = tmp_path / "backup.key"
    IdentityService(old_ctx).export(backup, "correct horse battery")
    old_ctx.close()
    (isolated_keyring / "keyring.json").unlink()  # the old computer's keyring is gone too

    new_ctx = ServiceContext(tmp_path / "new-computer")
    try:
        services = Services(new_ctx)
        win = MainWindow(services, theme, check_registry_on_start=False)
        qtbot.addWidget(win)
        win.show()
        wizard = win.show_first_run()
        wizard.next()
        page = wizard.identity_page
        assert not page.isComplete()  # nothing to recognise: a fresh data folder
        page.import_radio.setChecked(True)
        page.file_edit.setText(str(backup))
        page.passphrase.setText("not the passphrase")
        qtbot.mouseClick(page.go_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "wrong passphrase" in page.status.text().lower(), timeout=20_000)
        assert services.identity.current() is None
        page.passphrase.setText("correct horse battery")
        qtbot.mouseClick(page.go_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(page.isComplete, timeout=20_000)
        restored = services.identity.current()
        assert restored is not None and restored.fingerprint == original.fingerprint
        assert page.fingerprint.text().split() == original.grouped.split()
        # The restored private key is the one in the backup: it signs as the old identity.
        assert fingerprint(services.identity.load_signer()) == original.fingerprint
        assert wizard.focusWidget() is wizard.button(QWizard.WizardButton.NextButton)
        wizard.reject()
        win.close()
    finally:
        new_ctx.close()


def test_settings_test_connection_reports_unreachable_then_connected(
    qtbot: Any, window: MainWindow, health_stub: str
) -> None:
    window.show_page("settings")
    view = window.settings_view
    qtbot.mouseClick(view.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "unreachable" in view.registry_status.text(), timeout=10_000)
    view.registry_edit.clear()
    qtbot.keyClicks(view.registry_edit, health_stub)
    qtbot.keyClick(view.registry_edit, Qt.Key.Key_Return)
    assert window.services.ctx.settings.get(REGISTRY_URL) == health_stub
    qtbot.mouseClick(view.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Connected" in view.registry_status.text(), timeout=10_000)


def test_settings_theme_choice_is_saved_and_announced(qtbot: Any, window: MainWindow) -> None:
    view = window.settings_view
    with qtbot.waitSignal(window.themeChangeRequested, timeout=2000) as blocker:
        view.theme_combo.setCurrentIndex(view.theme_combo.findData("dark"))
    assert blocker.args == ["dark"]
    assert window.services.ctx.settings.get(THEME) == "dark"


def test_settings_identity_shows_fingerprint(qtbot: Any, window: MainWindow, services: Any) -> None:
    info = services.identity.init()
    window.settings_view.refresh_identity()
    qtbot.waitUntil(
        lambda: window.settings_view.fingerprint.text().split() == info.grouped.split(),
        timeout=5000,
    )
    assert window.settings_view.export_button.isEnabled()
    assert "keyring" in window.settings_view.storage.text().lower()


def _top(kind: type) -> Any:
    found = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]
    return found[-1] if found else None


def test_known_error_is_a_message_with_what_to_do(qtbot: Any, window: MainWindow) -> None:
    dialog = window.errors.show(
        BadInputError("cannot read data.csv", hint="check that the file still exists")
    )
    assert isinstance(dialog, QMessageBox)
    assert dialog.isVisible()
    assert dialog.text() == "Cannot read data.csv"
    assert dialog.informativeText() == "Check that the file still exists."
    dialog.accept()
    assert not window.errors.open_dialogs


@pytest.fixture
def file_logging(tmp_path: Path, restore_logging: None) -> Path:
    return setup_file_logging(tmp_path, debug=False)


def test_a_bug_shows_the_crash_dialog_with_details_and_log_path(
    qtbot: Any, window: MainWindow, file_logging: Path
) -> None:
    log_path = file_logging
    presenter = ErrorPresenter(window, log_path)
    try:
        raise ZeroDivisionError("division by zero in a slot")
    except ZeroDivisionError as exc:
        dialog = presenter.show(exc)
    assert isinstance(dialog, CrashDialog)
    assert "ZeroDivisionError" in dialog.details.toPlainText()
    labels = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert str(log_path) in labels
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert "division by zero" in QApplication.clipboard().text()
    assert log_path.exists() and "ZeroDivisionError" in log_path.read_text("utf-8")
    dialog.reject()


def test_background_failure_reaches_the_user(qtbot: Any, window: MainWindow) -> None:
    def offline() -> None:
        raise RegistryUnavailable("the registry is unreachable", hint="try again later")

    window.runner.start(offline, on_error=window.errors.show)
    qtbot.waitUntil(lambda: _top(QMessageBox) is not None, timeout=5000)
    box = _top(QMessageBox)
    assert "unreachable" in box.text()
    box.accept()


def test_a_locked_key_is_explained_in_the_gui_s_terms(qtbot: Any, window: MainWindow) -> None:
    from app.services.identity import PassphraseRequired

    dialog = window.errors.show(
        PassphraseRequired(
            "the private key is in the encrypted key file k; its passphrase is needed",
            hint="give it via --passphrase-file, CONTRIBUTOR_DESK_PASSPHRASE or the prompt",
        )
    )
    assert isinstance(dialog, QMessageBox)
    assert "passphrase-file" not in dialog.informativeText()
    assert dialog.informativeText() == "Use Registry ▸ Unlock key…, then try again."
    dialog.accept()
