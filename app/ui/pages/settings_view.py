"""Settings page: registry, identity, uploads, appearance, data folder.

Changes apply immediately and are saved in the background; identity operations (export,
rotate) and the registry test run as background tasks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.domain.errors import KnownError
from app.domain.units import KB
from app.services.registry_probe import check_registry
from app.settings import (
    CLOSE_TO_TRAY,
    REGISTRY_URL,
    SYNC_MINUTES,
    THEME,
    UPLOAD_BANDWIDTH_KBPS,
    UPLOAD_CONCURRENCY,
    Option,
)
from app.ui.adapters.tasks import TaskRunner
from app.ui.dialogs.common import PassphraseDialog
from app.ui.dialogs.key_unlock import KeyAction
from app.ui.theme import Theme
from app.ui.widgets.common import page_header, two_lines

if TYPE_CHECKING:
    from app.services.identity import IdentityInfo
    from app.ui.adapters.services import Services
    from app.ui.adapters.upload_adapter import GuiUploadQueue
    from app.ui.dialogs.key_unlock import KeyUnlocker
    from app.ui.errors import ErrorPresenter

log = logging.getLogger(__name__)

THEME_CHOICES = (("system", "Follow system"), ("light", "Light"), ("dark", "Dark"))


LABEL_WIDTH = 130


def sentence(text: str) -> str:
    """'the registry is unreachable' → 'The registry is unreachable.'"""
    text = text.strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!?" else f"{text}."


def _row_label(text: str) -> QLabel:
    """Fixed-width, right-aligned labels so fields line up across every card."""
    label = QLabel(text)
    label.setMinimumWidth(LABEL_WIDTH)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    label.setObjectName("muted")
    return label


def _add(form: QFormLayout, label: str, field: Any) -> None:
    form.addRow(_row_label(label), field)


def _card(title: str, text: str = "") -> tuple[QFrame, QFormLayout]:
    card = QFrame()
    card.setObjectName("card")
    outer = QVBoxLayout(card)
    outer.setContentsMargins(18, 14, 18, 16)
    outer.setSpacing(8)
    heading = QLabel(title)
    heading.setObjectName("sectionTitle")
    outer.addWidget(heading)
    if text:
        note = QLabel(text)
        note.setObjectName("muted")
        note.setWordWrap(True)
        outer.addWidget(note)
    form = QFormLayout()
    form.setHorizontalSpacing(16)
    form.setVerticalSpacing(10)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
    outer.addLayout(form)
    return card, form


class SettingsView(QWidget):
    themeChanged = Signal(str)
    registryChanged = Signal(str)
    syncIntervalChanged = Signal(int)  # minutes between automatic syncs; 0: at start and F5
    identityChanged = Signal()
    createIdentityRequested = Signal()

    def __init__(
        self,
        services: Services,
        runner: TaskRunner,
        theme: Theme,
        errors: ErrorPresenter,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.settings = services.ctx.settings
        self.runner = runner
        self.theme = theme
        self.errors = errors
        self.identity_info: dict[str, Any] | None = None
        self.unlocker: KeyUnlocker | None = None  # set by the main window
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(scroll)
        page = QWidget()
        scroll.setWidget(page)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(24, 20, 24, 24)
        layout.setSpacing(16)
        header, _ = page_header("Settings", "Saved as you change them")
        layout.addWidget(header)
        layout.addWidget(self._registry_card())
        layout.addWidget(self._identity_card())
        layout.addWidget(self._uploads_card())
        layout.addWidget(self._appearance_card())
        layout.addStretch(1)
        page.setMaximumWidth(900)

    # -- registry ------------------------------------------------------------------------
    def _registry_card(self) -> QFrame:
        card, form = _card(
            "Registry", "Where your contributions are submitted and where usage is read from."
        )
        self.registry_edit = QLineEdit(self.services.ctx.registry_url)
        self.registry_edit.setAccessibleName("Registry URL")
        self.registry_edit.setAcceptDrops(False)
        self.registry_edit.setPlaceholderText("https://registry.example.org")
        self.test_button = QPushButton("Test connection")
        self.test_button.setAccessibleName("Test connection")
        row = QHBoxLayout()
        row.addWidget(self.registry_edit, 1)
        row.addWidget(self.test_button)
        self.registry_status = QLabel("")
        self.registry_status.hide()
        self.registry_status.setWordWrap(True)
        self.registry_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.registry_status.setAccessibleName("Connection status")
        _add(form, "Registry URL", row)
        self.sync_minutes = QSpinBox()
        self.sync_minutes.setFixedWidth(170)
        self.sync_minutes.setRange(SYNC_MINUTES.minimum or 0, SYNC_MINUTES.maximum or 1440)
        self.sync_minutes.setSpecialValueText("At start and F5 only")
        self.sync_minutes.setPrefix("every ")
        self.sync_minutes.setSuffix(" min")
        self.sync_minutes.setValue(self.settings.get(SYNC_MINUTES))
        self.sync_minutes.setAccessibleName("Sync usage and rewards")
        self.sync_minutes.setToolTip(
            "Usage and rewards are synced when the app starts, on F5, and this often"
        )
        self.sync_minutes.valueChanged.connect(self._sync_minutes_changed)
        _add(form, "Sync usage", self.sync_minutes)
        # The transparency-log key pinned for the registry (first contact or log-key --set).
        self.log_key_label = QLabel("")
        self.log_key_label.setWordWrap(True)
        self.log_key_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_key_label.setAccessibleName("Transparency log key")
        _add(form, "Log key", self.log_key_label)  # filled when the page is shown
        # Under the form, not in it: a wrapped label in a form row gets one line's height
        # and long errors were cut off.
        status_row = QHBoxLayout()
        status_row.setContentsMargins(LABEL_WIDTH + form.horizontalSpacing(), 0, 0, 0)
        status_row.addWidget(self.registry_status, 1)
        outer = card.layout()
        assert isinstance(outer, QVBoxLayout)
        outer.addLayout(status_row)
        self.registry_edit.editingFinished.connect(self._registry_edited)
        self.test_button.clicked.connect(self.test_connection)
        return card

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.refresh_log_keys()  # a sync may have pinned a key since

    def refresh_log_keys(self) -> None:
        from app.services.transparency import all_pins, vkey_fingerprint

        pins = all_pins(self.services.ctx)
        self.log_key_label.setText(
            "\n".join(
                f"{p.origin}\nfingerprint {vkey_fingerprint(p.vkey)} "
                f"({'pinned at first contact' if p.source == 'first-contact' else 'set by you'})"
                for p in pins
            )
            or "None yet: the registry's key is pinned at the first sync"
        )
        self.log_key_label.setToolTip("\n".join(p.vkey for p in pins))

    def _sync_minutes_changed(self, minutes: int) -> None:
        self._save(SYNC_MINUTES, int(minutes))
        self.syncIntervalChanged.emit(int(minutes))

    def _registry_edited(self) -> None:
        url = self.registry_edit.text().strip().rstrip("/")
        if url and url != self.settings.get(REGISTRY_URL):
            self._save(REGISTRY_URL, url)
            self.registryChanged.emit(url)

    def test_connection(self) -> None:
        url = self.registry_edit.text().strip()
        self.test_button.setEnabled(False)
        self._status(self.registry_status, f"Connecting to {url}…", "muted")
        self.runner.start(
            check_registry,
            url,
            on_result=lambda r: self._status(
                self.registry_status,
                f"Connected to {r.url}" + (f" (version {r.version})" if r.version else ""),
                "success",
            ),
            on_error=self._test_failed,
            on_finished=lambda: self.test_button.setEnabled(True),
        )

    def _test_failed(self, exc: BaseException) -> None:
        if isinstance(exc, KnownError):
            text = sentence(exc.message)
            hint = sentence(exc.hint) if exc.hint else ""
            self._status(self.registry_status, f"{text} {hint}".strip(), "danger")
        else:
            self._status(self.registry_status, "Testing failed unexpectedly.", "danger")
            self.errors.show(exc)

    # -- identity ------------------------------------------------------------------------
    def _identity_card(self) -> QFrame:
        card, form = _card(
            "Identity",
            "Your Ed25519 key signs every contribution, so you can prove what you submitted. "
            "The private key stays in your system keyring, or in an encrypted key file when no "
            "secure keyring is available.",
        )
        self.fingerprint = QLabel("Loading…")
        self.fingerprint.setObjectName("fingerprint")
        self.fingerprint.setAccessibleName("Fingerprint")
        self.fingerprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.storage = QLabel("")
        self.storage.setAccessibleName("Key storage")
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        self.create_button = QPushButton("Create identity…")
        self.create_button.setAccessibleName("Create identity")
        self.export_button = QPushButton("Export backup…")
        self.export_button.setAccessibleName("Export identity backup")
        self.rotate_button = QPushButton("Rotate key…")
        self.rotate_button.setAccessibleName("Rotate key")
        self.rotate_button.setToolTip(
            "Create a new key, signed by the old one, so registries can follow the change"
        )
        for b in (self.create_button, self.export_button, self.rotate_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        _add(form, "Fingerprint", self.fingerprint)
        _add(form, "Stored in", self.storage)
        _add(form, "", buttons)
        self.create_button.clicked.connect(self.createIdentityRequested)
        self.export_button.clicked.connect(self.export_identity)
        self.rotate_button.clicked.connect(self.rotate_identity)
        return card

    def refresh_identity(self) -> None:
        # The service is built in the worker too: importing it on this thread right after
        # start-up would hold up the catalogue's first rows.
        self.runner.start(
            self.services.current_identity,
            on_result=self._show_identity,
            on_error=self.errors.show,
        )

    def _show_identity(self, info: IdentityInfo | None) -> None:
        has = info is not None
        self.identity_info = info.to_dict() if info is not None else None
        self.create_button.setVisible(not has)
        self.export_button.setEnabled(has)
        self.rotate_button.setEnabled(has)
        self.fingerprint.setObjectName("fingerprint" if has else "")
        self.fingerprint.style().unpolish(self.fingerprint)
        self.fingerprint.style().polish(self.fingerprint)
        if info is None:
            self.fingerprint.setText("No identity yet — create one to sign contributions")
            self.storage.setText("—")
            return
        self.fingerprint.setText(two_lines(info.grouped))
        self.fingerprint.setToolTip(info.fingerprint)
        if info.storage == "keyring":
            self.storage.setText(f"System keyring ({info.backend.rsplit('.', 1)[-1]})")
        else:
            self.storage.setText(f"Encrypted key file {info.key_file} (passphrase-protected)")

    def export_identity(self) -> None:
        identity = self.services.identity
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
        if not dialog.exec() or self.unlocker is None:
            return
        backup = dialog.passphrase()
        self.unlocker.run(
            KeyAction(
                "back up your key",
                lambda unlock: identity.export(Path(path), backup, unlock=unlock),
                on_result=lambda info: self._status(
                    self.storage, info.note.capitalize(), "success"
                ),
            )
        )

    def rotate_identity(self) -> None:
        identity = self.services.identity
        if self.unlocker is None:
            return
        # As `identity rotate`: the passphrase unlocks the old key and, when the new key goes
        # to a key file, protects it too, so it is asked for even when the key is remembered.
        self.unlocker.run(
            KeyAction(
                "rotate your key",
                lambda passphrase: identity.rotate(passphrase, unlock=passphrase),
                on_result=self._rotated,
                needs_passphrase_anyway=True,
            )
        )

    def _rotated(self, _result: object) -> None:
        self.refresh_identity()
        self.identityChanged.emit()

    # -- uploads & appearance ------------------------------------------------------------
    def _uploads_card(self) -> QFrame:
        card, form = _card("Uploads")
        self.concurrency = QSpinBox()
        self.concurrency.setFixedWidth(170)
        self.concurrency.setRange(1, 8)
        self.concurrency.setValue(self.settings.get(UPLOAD_CONCURRENCY))
        self.concurrency.setAccessibleName("Parallel uploads")
        self.concurrency.setSuffix(" at a time")
        self.bandwidth = QSpinBox()
        self.bandwidth.setFixedWidth(170)
        self.bandwidth.setToolTip("0 means unlimited; use the arrow keys or type a value")
        self.bandwidth.setRange(0, 1_000_000)
        self.bandwidth.setSingleStep(100)
        self.bandwidth.setSpecialValueText("Unlimited")
        self.bandwidth.setSuffix(" KB/s")
        self.bandwidth.setValue(self.settings.get(UPLOAD_BANDWIDTH_KBPS))
        self.bandwidth.setAccessibleName("Bandwidth limit")
        self.tray = QCheckBox("Keep uploading in the background when the window is closed")
        self.tray.setChecked(self.settings.get(CLOSE_TO_TRAY))
        self.tray.setAccessibleName("Close to tray")
        _add(form, "Parallel uploads", self.concurrency)
        _add(form, "Bandwidth limit", self.bandwidth)
        _add(form, "", self.tray)
        self.concurrency.valueChanged.connect(self._concurrency_changed)
        self.bandwidth.valueChanged.connect(self._bandwidth_changed)
        self.tray.toggled.connect(lambda v: self._save(CLOSE_TO_TRAY, bool(v)))
        return card

    def _running_queue(self) -> GuiUploadQueue | None:
        """The upload queue if this session started it (never started just for a setting)."""
        return self.services.started_uploads()

    def _bandwidth_changed(self, kbps: int) -> None:
        self._save(UPLOAD_BANDWIDTH_KBPS, int(kbps))
        queue = self._running_queue()
        if queue is not None:
            queue.set_limits(bandwidth_bytes_per_s=int(kbps) * KB)

    def _concurrency_changed(self, n: int) -> None:
        self._save(UPLOAD_CONCURRENCY, int(n))
        queue = self._running_queue()
        if queue is not None:
            queue.set_limits(concurrency=int(n))

    def _appearance_card(self) -> QFrame:
        card, form = _card("Appearance and storage")
        self.theme_combo = QComboBox()
        self.theme_combo.setFixedWidth(170)
        self.theme_combo.setAccessibleName("Theme")
        for value, label in THEME_CHOICES:
            self.theme_combo.addItem(label, value)
        current = self.settings.get(THEME)
        self.theme_combo.setCurrentIndex(
            max(
                0,
                [v for v, _ in THEME_CHOICES].index(current)
                if current in dict(THEME_CHOICES)
                else 0,
            )
        )
        self.theme_combo.currentIndexChanged.connect(self._theme_selected)
        folder = QLabel(str(self.services.ctx.data_dir))
        folder.setWordWrap(True)
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        folder.setAccessibleName("Data folder")
        open_button = QPushButton("Open")
        open_button.setAccessibleName("Open data folder")
        open_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.services.ctx.data_dir)))
        )
        row = QHBoxLayout()
        row.addWidget(folder, 1)
        row.addWidget(open_button)
        note = QLabel("To use another folder, start with --data-dir or CONTRIBUTOR_DESK_DATA_DIR.")
        note.setObjectName("muted")
        _add(form, "Theme", self.theme_combo)
        _add(form, "Data folder", row)
        _add(form, "", note)
        return card

    def _theme_selected(self) -> None:
        value = str(self.theme_combo.currentData())
        self._save(THEME, value)
        self.themeChanged.emit(value)

    # -- helpers -------------------------------------------------------------------------
    def _save(self, option: Option[Any], value: Any) -> None:
        self.settings.set(option, value)
        self.runner.start(self.settings.save, on_error=self.errors.show)

    def _status(self, label: QLabel, text: str, tone: str) -> None:
        label.show()
        label.setStyleSheet(f"color: {self.theme.colors.get(tone, self.theme.colors['muted'])};")
        label.setText(text)
