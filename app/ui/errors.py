"""Two kinds of failure, two presentations (conventions rule 4).

Expected failures (KnownError) become a message box saying what happened and what to do.
Anything else is a bug: a crash dialog with copyable details and the log file's path, logged in
full. Dialogs are opened non-blocking (`open()`), so a failure never freezes the window.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.errors import Cancelled, KnownError

log = logging.getLogger("app.ui")
LOG_FILE_NAME = "contributor-desk.log"


def setup_file_logging(log_dir: Path, debug: bool) -> Path:
    """Log to <data>/logs/contributor-desk.log (rotated); returns the path for the crash dialog."""
    path = log_dir / LOG_FILE_NAME
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return path
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG if debug else logging.INFO)
    root.addHandler(handler)
    wanted = logging.DEBUG if debug else logging.INFO
    if root.level > wanted or root.level == logging.NOTSET:
        # Keep the console as quiet as it was configured; only the file gets the detail.
        for other in root.handlers:
            if other is not handler and other.level == logging.NOTSET:
                other.setLevel(root.level or logging.WARNING)
        root.setLevel(wanted)
    return path


def _gui_hint(exc: KnownError) -> str | None:
    """The hint in the GUI's terms: a locked key file is unlocked from the menu here, not
    with the CLI's --passphrase-file or environment variable."""
    from app.services.identity import PassphraseRequired

    if isinstance(exc, PassphraseRequired) and "passphrase-file" in (exc.hint or ""):
        return "use Registry ▸ Unlock key…, then try again"
    return exc.hint


def known_error_box(parent: QWidget | None, exc: KnownError, title: str = "") -> QMessageBox:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title or "Contributor Desk")
    message = exc.message
    box.setText(message[:1].upper() + message[1:])
    hint = _gui_hint(exc)
    if hint:
        box.setInformativeText(hint[:1].upper() + hint[1:] + ".")
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.setAccessibleName("Error message")
    return box


class CrashDialog(QDialog):
    """For bugs: apologise, show copyable details, point at the log file."""

    def __init__(
        self,
        exc: BaseException,
        log_path: Path | None,
        parent: QWidget | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Something went wrong")
        self.setAccessibleName("Crash report")
        self.setMinimumSize(560, 380)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        headline = QLabel("Contributor Desk hit a bug it did not expect.")
        headline.setObjectName("sectionTitle")
        explain = QLabel(
            "Your catalogue is safe: every change is saved in one step or not at all. "
            "Please copy the details below into a bug report."
        )
        explain.setWordWrap(True)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Error details")
        text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
        self.details.setPlainText(text)
        where = QLabel(f"Log file: {log_path}" if log_path else "Logging to a file is not set up.")
        where.setObjectName("muted")
        where.setWordWrap(True)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("Copy details")
        self.copy_button.setAccessibleName("Copy details")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy_details)
        buttons.rejected.connect(self.reject)
        layout.addWidget(headline)
        layout.addWidget(explain)
        layout.addWidget(self.details, 1)
        layout.addWidget(where)
        layout.addWidget(buttons)

    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(self.details.toPlainText())


class ErrorPresenter:
    """Shows an exception the right way; owned by the main window, used by every view."""

    def __init__(self, parent: QWidget, log_path: Path | None) -> None:
        self._parent = parent
        self.log_path = log_path
        self.open_dialogs: list[QDialog] = []

    def show(self, exc: BaseException, title: str = "") -> QDialog | None:
        if isinstance(exc, Cancelled):
            return None
        if isinstance(exc, KnownError):
            log.info("known error shown: %s", exc)
            dialog: QDialog = known_error_box(self._parent, exc, title)
        else:
            log.error("bug", exc_info=(type(exc), exc, exc.__traceback__))
            dialog = CrashDialog(exc, self.log_path, self._parent)
        self.open_dialogs.append(dialog)
        dialog.finished.connect(lambda _=0, d=dialog: self._closed(d))
        dialog.open()
        return dialog

    def _closed(self, dialog: QDialog) -> None:
        if dialog in self.open_dialogs:
            self.open_dialogs.remove(dialog)
        dialog.deleteLater()


def install_excepthook(presenter_getter: Callable[[], ErrorPresenter | None]) -> None:
    """Bugs on the GUI thread (slots, events) show the crash dialog instead of vanishing."""
    previous = sys.excepthook

    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        presenter = presenter_getter()
        if presenter is None or issubclass(etype, KeyboardInterrupt):
            previous(etype, value, tb)
            return
        try:
            presenter.show(value)
        except Exception:  # never recurse from the hook
            previous(etype, value, tb)

    sys.excepthook = hook
