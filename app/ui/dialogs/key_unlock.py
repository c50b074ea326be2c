"""Unlocking the signing key in the GUI: the passphrase dialog and the one flow every action
that needs the key goes through (sync, sign, submit, rotate, backup).

Why one flow: the CLI gets a passphrase from --passphrase-file, the environment or a prompt;
the GUI has only this dialog, so every action must reach it the same way. The passphrase is
passed to the same service calls the CLI makes. It is never stored: with "Remember for this
session" the unlocked key stays in the session's SignerCache (as it does for the CLI's one
process) and later actions do not ask again; without it, each action asks and the passphrase
is checked again. A wrong passphrase asks again with a clear message; Cancel ends the action
without an error. The registry being offline is reported as that, never as a locked key:
actions that need the registry check it before asking for the passphrase.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.ui.resources import themed_icon

if TYPE_CHECKING:
    from app.ui.adapters.services import Services
    from app.ui.adapters.tasks import TaskRunner
    from app.ui.errors import ErrorPresenter
    from app.ui.theme import Theme

log = logging.getLogger(__name__)


class UnlockDialog(QDialog):
    """Asks for the key file's passphrase for one action; offers to remember the key."""

    def __init__(
        self,
        action: str,
        theme: Theme,
        *,
        key_file: str = "",
        remember: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unlock your key")
        self.setAccessibleName("Unlock your key")
        self.setObjectName("unlockDialog")
        # A fixed width lets the wrapped texts take the height they need (heightForWidth).
        self.setFixedWidth(500)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 16)
        layout.setSpacing(12)
        head = QHBoxLayout()
        head.setSpacing(14)
        icon = QLabel()
        icon.setPixmap(themed_icon("sign", theme.colors["accent"]).pixmap(32, 32))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        head.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        texts = QVBoxLayout()
        texts.setSpacing(4)
        title = QLabel(f"Enter your passphrase to {action}")
        title.setObjectName("sectionTitle")
        title.setWordWrap(True)
        name = f" ({Path(key_file).name})" if key_file else ""
        self.explanation = QLabel(
            f"Your signing key is kept in an encrypted key file{name}. Its passphrase "
            "unlocks it; the passphrase itself is never stored."
        )
        self.explanation.setObjectName("muted")
        self.explanation.setWordWrap(True)
        self.explanation.setToolTip(key_file)
        texts.addWidget(title)
        texts.addWidget(self.explanation)
        head.addLayout(texts, 1)
        layout.addLayout(head)

        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase")
        self.passphrase.setPlaceholderText("Passphrase of your key file")
        layout.addWidget(self.passphrase)
        self.error = QLabel("")
        self.error.setObjectName("problemError")
        self.error.setStyleSheet(f"color: {theme.colors['danger']};")
        self.error.setWordWrap(False)  # one short sentence; wrapping here left gaps
        self.error.setAccessibleName("Unlock problem")
        self.error.hide()
        layout.addWidget(self.error)
        self.remember = QCheckBox("Remember for this session")
        self.remember.setAccessibleName("Remember for this session")
        self.remember.setToolTip(
            "Keep the key unlocked until you quit Contributor Desk, so sync, sign and submit "
            "do not ask again. The passphrase itself is never stored."
        )
        self.remember.setChecked(remember)
        layout.addWidget(self.remember)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Unlock")
        self.ok_button.setObjectName("primary")
        self.ok_button.setDefault(True)
        self.cancel_button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.passphrase.setFocus()
        self.adjustSize()

    def show_problem(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))
        self.adjustSize()
        self.passphrase.selectAll()
        self.passphrase.setFocus()

    def _check(self) -> None:
        if not self.passphrase.text():
            self.show_problem("Enter the passphrase.")
            return
        self.accept()

    def value(self) -> str:
        return self.passphrase.text()


@dataclass
class KeyAction:
    """One use of the key. `work(passphrase)` runs on a worker; `preflight()` too, before
    anything is asked (e.g. "is the registry reachable?")."""

    verb: str  # completes "Enter your passphrase to …", e.g. "sync usage and rewards"
    work: Callable[[str | None], Any]
    on_result: Callable[[Any], None]
    on_error: Callable[[BaseException], None] | None = None
    on_cancel: Callable[[], None] | None = None
    preflight: Callable[[], Any] | None = None
    needs_passphrase_anyway: bool = False  # e.g. rotation writes a new key file


class KeyUnlocker(QObject):
    """Runs KeyActions, asking for the passphrase when the key is in an encrypted file."""

    dialogOpened = Signal(object)  # the UnlockDialog, for tests and screenshots
    message = Signal(str)  # a transient status-bar message (e.g. "cancelled")
    unlocked = Signal()  # an action that needed the key succeeded: this session holds it

    def __init__(
        self,
        services: Services,
        runner: TaskRunner,
        errors: ErrorPresenter,
        theme: Theme,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.runner = runner
        self.errors = errors
        self.theme = theme
        self._parent = parent
        self.remembered = False
        self.dialog: UnlockDialog | None = None
        self.key_file = ""

    # -- the flow ------------------------------------------------------------------------
    def unlock_now(self) -> None:
        """Registry ▸ Unlock key…: unlock now (e.g. for uploads queued in an earlier session)."""
        from app.services.signing import unlock_signer

        ctx = self.services.ctx
        self.run(
            KeyAction(
                "unlock it for this session",
                lambda passphrase: unlock_signer(ctx, passphrase),
                on_result=lambda _key: self.message.emit("Your key is unlocked for this session"),
            )
        )

    def run(self, action: KeyAction) -> None:
        self.runner.start(
            self._prepare,
            action,
            on_result=lambda ask: self._prepared(action, bool(ask)),
            on_error=lambda exc: self._failed(action, exc),
        )

    def _prepare(self, action: KeyAction) -> bool:
        """On a worker: the preflight first (so "offline" is never hidden behind the key),
        then whether to ask before trying."""
        if action.preflight is not None:
            action.preflight()
        identity = self.services.identity
        if not identity.key_in_file():
            return False
        info = identity.current()
        self.key_file = str(info.key_file or "") if info is not None else ""
        return action.needs_passphrase_anyway or not self.remembered

    def _prepared(self, action: KeyAction, ask: bool) -> None:
        if ask:
            self._ask(action, "")
        else:
            self._attempt(action, None)

    def _attempt(self, action: KeyAction, passphrase: str | None) -> None:
        """With a passphrase, unlock first (a fraction of a second) so the dialog closes as
        soon as the key opens, then the action runs with its own progress display."""
        if passphrase is None:
            self._run_work(action, None)
            return
        self.runner.start(
            self._unlock,
            passphrase,
            on_result=lambda _key: self._unlocked_with(action, passphrase),
            on_error=lambda exc: self._failed(action, exc, passphrase),
        )

    def _unlock(self, passphrase: str) -> Any:
        """On a worker: open the key file with the passphrase (the session keeps the key)."""
        from app.services.signing import unlock_signer

        return unlock_signer(self.services.ctx, passphrase)

    def _unlocked_with(self, action: KeyAction, passphrase: str) -> None:
        if self.dialog is not None:
            self.remembered = self.dialog.remember.isChecked()
        self._close_dialog()
        self.unlocked.emit()
        self._run_work(action, passphrase)

    def _run_work(self, action: KeyAction, passphrase: str | None) -> None:
        self.runner.start(
            action.work,
            passphrase,
            on_result=lambda value: self._done(action, value),
            on_error=lambda exc: self._failed(action, exc, passphrase),
        )

    def _done(self, action: KeyAction, value: Any) -> None:
        self._close_dialog()
        self.unlocked.emit()
        action.on_result(value)

    def _failed(self, action: KeyAction, exc: BaseException, tried: str | None = None) -> None:
        from app.services.identity import PassphraseRequired
        from app.signing.keyfile import WrongPassphrase

        if isinstance(exc, WrongPassphrase):
            self._ask(action, "That passphrase does not open your key file. Try again.")
            return
        if isinstance(exc, PassphraseRequired) and tried is None:
            # Remembered, but the session no longer holds this key (e.g. after a rotation).
            self.remembered = False
            self._ask(action, "")
            return
        self._close_dialog()
        (action.on_error or self.errors.show)(exc)

    def _ask(self, action: KeyAction, problem: str) -> None:
        dialog = self.dialog
        if dialog is None:
            dialog = UnlockDialog(
                action.verb,
                self.theme,
                key_file=self.key_file,
                remember=self.remembered,
                parent=self._parent,
            )
            dialog.setWindowModality(Qt.WindowModality.WindowModal)
            self.dialog = dialog
            dialog.accepted.connect(lambda: self._entered(action))
            dialog.rejected.connect(lambda: self._cancelled(action))
            dialog.open()
            self.dialogOpened.emit(dialog)
        else:  # asked again: same dialog, now saying what was wrong
            dialog.setEnabled(True)
            dialog.setResult(0)
            dialog.show()
        dialog.show_problem(problem)

    def _entered(self, action: KeyAction) -> None:
        dialog = self.dialog
        if dialog is None:
            return
        dialog.setEnabled(False)  # stays visible while the passphrase is tried
        dialog.show()
        self._attempt(action, dialog.value())

    def _cancelled(self, action: KeyAction) -> None:
        self._close_dialog()
        self.message.emit("Cancelled: your key stays locked and nothing was changed")
        if action.on_cancel is not None:
            action.on_cancel()

    def _close_dialog(self) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.blockSignals(True)
            dialog.hide()
            dialog.deleteLater()
