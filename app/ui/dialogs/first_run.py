"""First-run wizard: create or restore the identity, then connect to a registry.

Every step can be skipped (Cancel / Skip); nothing here is required to browse the catalogue.
Key creation and the connection test run in background tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.domain.errors import KnownError
from app.services.registry_probe import check_registry
from app.settings import REGISTRY_URL
from app.ui.adapters.tasks import TaskRunner
from app.ui.dialogs.common import PassphraseDialog, validate_passphrase
from app.ui.theme import Theme
from app.ui.widgets.common import two_lines

if TYPE_CHECKING:
    from app.services.identity import IdentityInfo
    from app.ui.adapters.services import Services


def _text(html: str) -> QLabel:
    label = QLabel(html)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


class WelcomePage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Welcome to Contributor Desk")
        self.setSubTitle("Two quick steps: your signing identity, then your registry.")
        layout = QVBoxLayout(self)
        layout.addWidget(
            _text(
                "<p>Contributor Desk keeps a catalogue of the datasets and annotations you "
                "prepare, <b>signs</b> each contribution with your own key, uploads it to a "
                "registry, and shows which models used your data and what it earned you.</p>"
                "<p>You can skip this setup and do it later in <b>Settings</b>.</p>"
            )
        )
        layout.addStretch(1)


class IdentityPage(QWizardPage):
    def __init__(self, services: Services, runner: TaskRunner, theme: Theme) -> None:
        super().__init__()
        self.services = services
        self.runner = runner
        self.theme = theme
        self.info: Any = None
        self.busy = False
        self.setTitle("Your signing identity")
        self.setSubTitle("A key pair that proves which contributions are yours.")
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(
            _text(
                "Your <b>private key</b> is kept in your operating system's keyring (Keychain, "
                "Windows Credential Manager or Secret Service). If no secure keyring is "
                "available, it is kept in an <b>encrypted key file</b> protected by a passphrase "
                "you choose — never in plain text."
            )
        )
        self.create_radio = QRadioButton("Create a new identity")
        self.create_radio.setChecked(True)
        self.import_radio = QRadioButton("Restore an identity from a backup file")
        for r in (self.create_radio, self.import_radio):
            r.setAccessibleName(r.text())
        group = QButtonGroup(self)
        group.addButton(self.create_radio)
        group.addButton(self.import_radio)
        layout.addWidget(self.create_radio)
        layout.addWidget(self.import_radio)

        form = QFormLayout()
        self.file_edit = QLineEdit()
        self.file_edit.setAccessibleName("Backup file")
        self.browse = QPushButton("Browse…")
        self.browse.setAccessibleName("Browse for backup file")
        row = QHBoxLayout()
        row.addWidget(self.file_edit, 1)
        row.addWidget(self.browse)
        self.file_row = QWidget()
        self.file_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase")
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat.setAccessibleName("Repeat passphrase")
        self.passphrase_note = QLabel("")
        self.passphrase_note.setWordWrap(True)
        self.passphrase_note.setObjectName("muted")
        form.addRow("Backup file", self.file_row)
        form.addRow("Passphrase", self.passphrase)
        form.addRow("Repeat", self.repeat)
        layout.addLayout(form)
        self.form = form
        layout.addWidget(self.passphrase_note)
        self.go_button = QPushButton("Create identity")
        self.go_button.setObjectName("primary")
        self.go_button.setAccessibleName("Create identity")
        brow = QHBoxLayout()
        brow.addWidget(self.go_button)
        brow.addStretch(1)
        layout.addLayout(brow)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Identity status")
        self.fingerprint = QLabel("")
        self.fingerprint.setObjectName("fingerprint")
        self.fingerprint.setAccessibleName("Fingerprint")
        self.fingerprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fingerprint.hide()
        layout.addWidget(self.status)
        layout.addWidget(self.fingerprint)
        # Shown once a new key exists: without a backup, a lost computer is a lost identity.
        self.backup_box = QWidget()
        backup = QHBoxLayout(self.backup_box)
        backup.setContentsMargins(0, 4, 0, 0)
        self.backup_note = QLabel(
            "<b>Back up your key now.</b> If this computer is lost, the backup is the only way "
            "to keep signing as you."
        )
        self.backup_note.setWordWrap(True)
        self.backup_button = QPushButton("Export backup…")
        self.backup_button.setAccessibleName("Export identity backup")
        self.backup_button.clicked.connect(self.export_backup)
        backup.addWidget(self.backup_note, 1)
        backup.addWidget(self.backup_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.backup_box.hide()
        layout.addWidget(self.backup_box)
        layout.addStretch(1)
        self._unlock: str | None = None  # the new key file's passphrase, for the backup
        self.backup_path: Path | None = None
        self.needs_passphrase = False
        self.create_radio.toggled.connect(self._mode_changed)
        self.browse.clicked.connect(self._browse)
        self.go_button.clicked.connect(self.run)
        self._mode_changed()

    def initializePage(self) -> None:
        self.runner.start(self.services.current_identity, on_result=self._existing)

    def _existing(self, info: IdentityInfo | None) -> None:
        # The check runs beside the form: once the user has created or restored an identity
        # (or is doing so), its answer names that identity and is no news.
        if info is not None and not self.busy and self.info is None:
            self._done(info, "You already have an identity.")

    def _mode_changed(self) -> None:
        importing = self.import_radio.isChecked()
        self.file_row.setVisible(importing)
        self.form.labelForField(self.file_row).setVisible(importing)
        show_pass = importing or self.needs_passphrase
        for w in (self.passphrase,):
            w.setVisible(show_pass)
            self.form.labelForField(w).setVisible(show_pass)
        show_repeat = self.needs_passphrase and not importing
        self.repeat.setVisible(show_repeat)
        self.form.labelForField(self.repeat).setVisible(show_repeat)
        self.go_button.setText("Restore identity" if importing else "Create identity")
        self.go_button.setAccessibleName(self.go_button.text())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose your identity backup")
        if path:
            self.file_edit.setText(path)

    def _say(self, text: str, tone: str) -> None:
        self.status.setStyleSheet(
            f"color: {self.theme.colors.get(tone, self.theme.colors['muted'])};"
        )
        self.status.setText(text)

    def run(self) -> None:
        identity = self.services.identity
        if self.busy:
            return
        importing = self.import_radio.isChecked()
        passphrase: str | None = None
        if importing:
            path = Path(self.file_edit.text().strip())
            if not self.file_edit.text().strip():
                self._say("Choose the backup file first.", "danger")
                return
            passphrase = self.passphrase.text()
            task: Callable[[], IdentityInfo] = partial(identity.import_, path, passphrase)
        else:
            if self.needs_passphrase:
                problem = validate_passphrase(self.passphrase.text(), self.repeat.text())
                if problem:
                    self._say(problem, "danger")
                    return
                passphrase = self.passphrase.text()
            task = partial(identity.init, passphrase)
            self._unlock = passphrase
        self.busy = True
        self.go_button.setEnabled(False)
        self._say("Working…", "muted")
        self.runner.start(task, on_result=lambda info: self._done(info, ""), on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.go_button.setEnabled(True)
        from app.services.identity import PassphraseRequired

        if isinstance(exc, PassphraseRequired) and not self.import_radio.isChecked():
            self.needs_passphrase = True
            self._mode_changed()
            self.passphrase_note.setText(
                "No secure keyring is available here, so your key will be kept in an encrypted "
                "key file. Choose a passphrase of at least 8 characters; you will need it to "
                "sign."
            )
            self._say("Choose a passphrase, then create the identity.", "warning")
            self.passphrase.setFocus()
            return
        if isinstance(exc, KnownError):
            self._say(
                f"{exc.message[:1].upper()}{exc.message[1:]}. {exc.hint or ''}".strip(), "danger"
            )
        else:
            self._say(f"Unexpected error: {exc}", "danger")

    def _done(self, info: IdentityInfo, prefix: str) -> None:
        self.busy = False
        self.info = info
        where = (
            "your system keyring"
            if info.storage == "keyring"
            else f"the encrypted key file {info.key_file}"
        )
        self._say(f"{prefix} Your private key is stored in {where}.".strip(), "success")
        self.fingerprint.setText(two_lines(info.grouped))
        self.fingerprint.setToolTip(info.fingerprint)
        self.fingerprint.show()
        for radio in (self.create_radio, self.import_radio):
            radio.setEnabled(False)
        # The form did its job: hide it, so the result (and the backup offer) has the room.
        form_fields: tuple[QWidget, ...] = (self.file_row, self.passphrase, self.repeat)
        for w in form_fields:
            w.hide()
            label = self.form.labelForField(w)
            if label is not None:
                label.hide()
        self.passphrase_note.hide()
        self.go_button.hide()
        created = not prefix and not self.import_radio.isChecked()
        self.backup_box.setVisible(created)
        self.completeChanged.emit()
        # The button that had focus is hidden: hand it on to what comes next (not to Back).
        wizard = self.wizard()
        if created:
            self.backup_button.setFocus()
        elif wizard is not None:
            wizard.button(QWizard.WizardButton.NextButton).setFocus()

    def export_backup(self) -> None:
        """Write an encrypted backup of the new key (its own passphrase, asked here)."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Export identity backup", "contributor-desk-identity.key", "Key file (*.key)"
        )
        if not path:
            return
        dialog = PassphraseDialog(
            "Protect the backup",
            "The backup is encrypted with this passphrase. Keep both somewhere safe: anyone "
            "with the file and the passphrase can sign as you.",
            confirm=True,
            parent=self,
        )
        if not dialog.exec():
            return
        self.export_backup_to(Path(path), dialog.passphrase())

    def export_backup_to(self, path: Path, passphrase: str) -> None:
        identity = self.services.identity
        self.backup_button.setEnabled(False)
        self.runner.start(
            identity.export,
            path,
            passphrase,
            unlock=self._unlock,
            on_result=lambda _info: self._backed_up(path),
            on_error=self._backup_failed,
        )

    def _backed_up(self, path: Path) -> None:
        self.backup_path = path
        self.backup_note.setText(f"Backup written to {path}. Keep it and its passphrase safe.")
        self.backup_button.hide()

    def _backup_failed(self, exc: BaseException) -> None:
        self.backup_button.setEnabled(True)
        if isinstance(exc, KnownError):
            self._say(f"{exc.message[:1].upper()}{exc.message[1:]}.", "danger")
        else:
            self._say(f"The backup failed unexpectedly: {exc}", "danger")

    def isComplete(self) -> bool:
        return self.info is not None


class RegistryPage(QWizardPage):
    def __init__(self, services: Services, runner: TaskRunner, theme: Theme) -> None:
        super().__init__()
        self.services = services
        self.runner = runner
        self.theme = theme
        self.setTitle("Connect to a registry")
        self.setSubTitle("The service your contributions are submitted to.")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.url = QLineEdit(services.ctx.registry_url)
        self.url.setAccessibleName("Registry URL")
        self.test_button = QPushButton("Test connection")
        self.test_button.setAccessibleName("Test connection")
        row = QHBoxLayout()
        row.addWidget(self.url, 1)
        row.addWidget(self.test_button)
        form.addRow("Registry URL", row)
        layout.addLayout(form)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Connection status")
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.test_button.clicked.connect(self.test)

    def test(self) -> None:
        self.test_button.setEnabled(False)
        self._say(f"Connecting to {self.url.text().strip()}…", "muted")
        self.runner.start(
            check_registry,
            self.url.text(),
            on_result=lambda r: self._say(f"Connected to {r.url}.", "success"),
            on_error=self._failed,
            on_finished=lambda: self.test_button.setEnabled(True),
        )

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, KnownError):
            self._say(
                f"{exc.message[:1].upper()}{exc.message[1:]}. {exc.hint or ''}".strip(), "danger"
            )
        else:
            self._say(f"Unexpected error: {exc}", "danger")

    def _say(self, text: str, tone: str) -> None:
        self.status.setStyleSheet(
            f"color: {self.theme.colors.get(tone, self.theme.colors['muted'])};"
        )
        self.status.setText(text)

    def validatePage(self) -> bool:
        url = self.url.text().strip().rstrip("/")
        if url:
            settings = self.services.ctx.settings
            settings.set(REGISTRY_URL, url)
            self.runner.start(settings.save)
        return True


class FirstRunWizard(QWizard):
    def __init__(
        self, services: Services, runner: TaskRunner, theme: Theme, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up Contributor Desk")
        self.setAccessibleName("Set up Contributor Desk")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.HaveCustomButton1, True)
        self.setButtonText(QWizard.WizardButton.CustomButton1, "Skip setup")
        self.customButtonClicked.connect(lambda _which: self.reject())
        self.setMinimumSize(640, 540)
        self.welcome = WelcomePage()
        self.identity_page = IdentityPage(services, runner, theme)
        self.registry_page = RegistryPage(services, runner, theme)
        self.addPage(self.welcome)
        self.addPage(self.identity_page)
        self.addPage(self.registry_page)
