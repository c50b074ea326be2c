"""Small modal dialogs: passphrase entry (once or twice, with the rules explained)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

MIN_PASSPHRASE = 8


class PassphraseDialog(QDialog):
    """Ask for a passphrase; with confirm=True, ask twice and check they match."""

    def __init__(
        self, title: str, explanation: str, *, confirm: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.setMinimumWidth(440)
        self._confirm = confirm
        layout = QVBoxLayout(self)
        text = QLabel(explanation)
        text.setWordWrap(True)
        layout.addWidget(text)
        form = QFormLayout()
        self.first = QLineEdit()
        self.first.setEchoMode(QLineEdit.EchoMode.Password)
        self.first.setAccessibleName("Passphrase")
        form.addRow("Passphrase", self.first)
        self.second = QLineEdit()
        self.second.setEchoMode(QLineEdit.EchoMode.Password)
        self.second.setAccessibleName("Repeat passphrase")
        if confirm:
            form.addRow("Repeat", self.second)
        layout.addLayout(form)
        self.error = QLabel("")
        self.error.setObjectName("problemError")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _check(self) -> None:
        problem = validate_passphrase(
            self.first.text(), self.second.text() if self._confirm else None
        )
        if problem:
            self.error.setText(problem)
            return
        self.accept()

    def passphrase(self) -> str:
        return self.first.text()


def validate_passphrase(first: str, repeat: str | None) -> str:
    """'' when acceptable, else what is wrong (the service enforces its own rules too)."""
    if repeat is not None and len(first) < MIN_PASSPHRASE:
        return f"Use at least {MIN_PASSPHRASE} characters."
    if not first:
        return "Enter the passphrase."
    if repeat is not None and first != repeat:
        return "The two passphrases differ."
    return ""
