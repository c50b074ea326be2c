"""The main window: sidebar navigation, pages, menus, status bar, drag-and-drop anywhere.

Window geometry and state live in an ini-format QSettings file in the data dir (never the
user's global Qt settings), so tests and portable installs stay isolated.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from app import APP_NAME
from app.services.registry_probe import check_registry
from app.settings import SYNC_MINUTES
from app.ui.adapters.tasks import TaskRunner
from app.ui.dialogs.key_unlock import KeyAction, KeyUnlocker
from app.ui.errors import ErrorPresenter
from app.ui.pages.catalogue_view import CatalogueView
from app.ui.pages.settings_view import SettingsView
from app.ui.pages.uploads_view import UploadsView
from app.ui.resources import app_icon, themed_icon
from app.ui.theme import Theme
from app.ui.widgets.drop_overlay import DropOverlay

if TYPE_CHECKING:
    from app.ui.adapters.services import Services
    from app.ui.dialogs.first_run import FirstRunWizard
    from app.ui.dialogs.import_dialog import ImportDialog
    from app.ui.pages.rewards_view import RewardsView

log = logging.getLogger(__name__)
UI_STATE_FILE = "ui-state.ini"
PAGES = (
    ("catalogue", "Catalogue"),
    ("uploads", "Uploads"),
    ("rewards", "Rewards"),
    ("datanets", "My datanets"),
    ("settings", "Settings"),
)
REGISTRY_RECHECK_MS = 60_000


def dropped_paths(urls: list[Any]) -> list[Path]:
    return [Path(u.toLocalFile()) for u in urls if u.isLocalFile() and u.toLocalFile()]


class MainWindow(QMainWindow):
    themeChangeRequested = Signal(str)

    def __init__(
        self,
        services: Services,
        theme: Theme,
        *,
        log_path: Path | None = None,
        check_registry_on_start: bool = True,
        defer_catalogue: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.theme = theme
        self.runner = TaskRunner(parent=self)
        self.errors = ErrorPresenter(self, log_path)
        # Every action that needs the private key (sync, sign, submit, rotate) unlocks it here.
        self.unlocker = KeyUnlocker(services, self.runner, self.errors, theme, self)
        self.ui_state = QSettings(
            str(services.ctx.data_dir / UI_STATE_FILE), QSettings.Format.IniFormat
        )
        self.import_dialog: ImportDialog | None = None
        self.wizard: FirstRunWizard | None = None
        self.demo_url: str | None = None
        self.registry_state = "unknown"
        self._rewards: RewardsView | None = None
        self._syncing = False
        self._quiet_sync = False  # the automatic first sync fails without a dialog
        self._told_key_wait = False  # "uploads are waiting for your key" said once
        self.tray: QSystemTrayIcon | None = None
        self.quitting = False
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.setMinimumSize(QSize(960, 600))
        self._build()
        self._build_menus()
        self._build_status()
        self.overlay = DropOverlay(theme, self)
        self.restore_state()
        self._first_paint_done = False
        self._defer_catalogue = defer_catalogue
        self._check_registry_on_start = check_registry_on_start
        if not defer_catalogue:
            self.catalogue.load()
        self._registry_timer = QTimer(self)
        self._registry_timer.setInterval(REGISTRY_RECHECK_MS)
        self._registry_timer.timeout.connect(self.check_registry)
        # Usage and rewards: synced at start, every N minutes (Settings) and on F5.
        self._sync_timer = QTimer(self)
        self._sync_timer.timeout.connect(self.auto_sync)
        self.settings_view.syncIntervalChanged.connect(self.set_sync_interval)

    # -- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        central = QWidget()
        root = QHBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        side = QWidget()
        side.setObjectName("sidebarPane")
        side.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        side.setFixedWidth(188)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(10, 14, 1, 10)  # 1 px: the pane draws its border
        side_layout.setSpacing(8)
        brand = QLabel(APP_NAME)
        brand.setObjectName("brand")
        side_layout.addWidget(brand)
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setAccessibleName("Sections")
        self.sidebar.setIconSize(QSize(18, 18))
        self.sidebar.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sidebar.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        for key, label in PAGES:
            item = QListWidgetItem(themed_icon(key, self.theme.colors["text"]), label)
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setSizeHint(QSize(150, 38))
            self.sidebar.addItem(item)
        side_layout.addWidget(self.sidebar, 1)
        root.addWidget(side)

        self.pages = QStackedWidget()
        self.catalogue = CatalogueView(self.services, self.runner, self.theme, self.errors)
        from app.ui.adapters.item_actions import ItemActions

        self.item_actions = ItemActions(
            self.services,
            self.runner,
            self.errors,
            self.theme,
            self.unlocker,
            self.catalogue,
            self,
        )
        self.uploads = UploadsView(
            None, self.runner, self.theme, available=self.services.uploads_available
        )
        self.rewards_placeholder = QWidget()  # the Rewards page is built on first visit
        self.settings_view = SettingsView(self.services, self.runner, self.theme, self.errors)
        self.settings_view.unlocker = self.unlocker
        from app.ui.pages.datanets_page import DatanetsPage

        self.datanets = DatanetsPage(self.services.ctx, self.runner, self.theme, self.errors)
        self.datanets.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        for page in (
            self.catalogue,
            self.uploads,
            self.rewards_placeholder,
            self.datanets,
            self.settings_view,
        ):
            self.pages.addWidget(page)
        root.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.sidebar.currentRowChanged.connect(self._page_selected)
        self.sidebar.setCurrentRow(0)
        self.catalogue.addFilesRequested.connect(self.add_files)
        self.catalogue.addFolderRequested.connect(self.add_folder)
        self.catalogue.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.item_actions.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.unlocker.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.unlocker.unlocked.connect(self._key_unlocked)
        self.catalogue.search.setAcceptDrops(False)
        self.settings_view.themeChanged.connect(self.themeChangeRequested)
        self.settings_view.registryChanged.connect(lambda _u: self.check_registry())
        self.settings_view.createIdentityRequested.connect(self.show_first_run)
        self.uploads.summaryChanged.connect(self._queue_summary)
        self.uploads.contributionDecided.connect(self._contribution_decided)

    def _page_selected(self, row: int) -> None:
        if row == 2 and self._rewards is None:
            from app.ui.pages.rewards_view import RewardsView  # charts are loaded on first visit

            self._rewards = RewardsView(self.theme)
            self._rewards.syncRequested.connect(self.sync)
            self._rewards.scopeChanged.connect(self._rewards_scope)
            self._rewards.csvRequested.connect(self._export_rewards_csv)
            if self.registry_state == "offline":
                self._rewards.set_offline(self.registry_label.toolTip())
            self.pages.insertWidget(2, self._rewards)
            self.pages.removeWidget(self.rewards_placeholder)
        if row == 2:
            self.load_rewards()
        if PAGES[row][0] == "datanets" and not self.datanets.loaded:
            self.datanets.refresh()
        self.pages.setCurrentIndex(row)

    def _rewards_scope(self, contribution_id: str | None) -> None:
        view = self._rewards
        if view is not None:

            def loaded(overview: Any) -> None:
                if view.scope.currentData() == contribution_id:  # not a stale answer
                    view.show_scoped(overview)

            self.runner.start(
                self.services.rewards.overview,
                contribution_id,
                on_result=loaded,
                on_error=self.errors.show,
            )

    def load_rewards(self) -> None:
        """The Rewards page from the catalogue's synced copy (no network)."""
        view = self._rewards
        if view is None:
            return

        from app.ui.pages.rewards_view import local_time

        def loaded(overview: Any) -> None:
            view.show_overview(overview)
            when = local_time(overview.last_sync) if overview is not None else None
            if when is not None and not self._syncing:
                self.sync_label.setText(f"Last sync: {when:%H:%M}")
            if overview is not None and overview.last_sync is None and not self._syncing:
                # Never synced with this registry: fetch now, once. Offline, that is no reason
                # for a dialog: the status bar says so and F5 retries.
                self._quiet_sync = True
                self.sync()

        self.runner.start(
            self.services.rewards.overview, on_result=loaded, on_error=self.errors.show
        )

    def show_page(self, key: str) -> None:
        keys = [k for k, _ in PAGES]
        self.sidebar.setCurrentRow(keys.index(key))

    def current_page(self) -> str:
        return PAGES[self.sidebar.currentRow()][0]

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.add_files_action = self._action(
            "Add &files…", QKeySequence.StandardKey.Open, self.add_files, icon="add-file"
        )
        self.add_folder_action = self._action(
            "Add f&older…", QKeySequence("Ctrl+Shift+O"), self.add_folder, icon="add-folder"
        )
        self.quit_action = self._action("&Quit", QKeySequence("Ctrl+Q"), self.quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        file_menu.addActions([self.add_files_action, self.add_folder_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        self.find_action = self._action("&Find", QKeySequence.StandardKey.Find, self.focus_search)
        self.settings_action = self._action(
            "&Settings…", QKeySequence("Ctrl+,"), lambda: self.show_page("settings")
        )
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        edit_menu.addActions([self.find_action, self.settings_action])
        view_menu = bar.addMenu("&View")
        for i, (key, label) in enumerate(PAGES, start=1):
            view_menu.addAction(
                self._action(label, QKeySequence(f"Ctrl+{i}"), lambda k=key: self.show_page(k))
            )
        registry_menu = bar.addMenu("&Registry")
        self.sync_action = self._action("&Sync now", QKeySequence("F5"), self.sync, icon="sync")
        self.unlock_action = self._action("&Unlock key…", None, self.unlock_key)
        self.unlock_action.setToolTip(
            "Unlock a key kept in an encrypted key file, e.g. so waiting uploads can continue"
        )
        registry_menu.addActions([self.sync_action, self.unlock_action])
        help_menu = bar.addMenu("&Help")
        about = self._action("&About Contributor Desk", None, self.about)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(about)

    def _action(self, text: str, shortcut: Any, slot: Any, icon: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if icon:
            action.setIcon(themed_icon(icon, self.theme.colors["text"]))
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_status(self) -> None:
        status = self.statusBar()
        status.setSizeGripEnabled(False)
        self.registry_label = QLabel("Registry: checking…")
        self.registry_label.setAccessibleName("Registry status")
        self.sync_label = QLabel("Last sync: never")
        self.sync_label.setAccessibleName("Last sync")
        self.queue_label = QLabel(
            "Uploads: queue idle" if self.services.uploads_available else "Uploads: not available"
        )
        self.queue_label.setAccessibleName("Upload queue summary")
        for w in (self.registry_label, self.sync_label, self.queue_label):
            status.addPermanentWidget(w)

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if not self._first_paint_done:
            self._first_paint_done = True
            QTimer.singleShot(0, self._after_first_paint)

    def _after_first_paint(self) -> None:
        """Startup, second half: the window is on screen; now the slower work.

        The catalogue (importing the services and SQLAlchemy) loads first, on this thread;
        only then start background work (keyring probe, upload queue, registry check), whose
        workers would otherwise compete with the GUI thread for the interpreter.
        """
        if self._defer_catalogue:
            self.catalogue.load()
        self.settings_view.refresh_identity()
        if self.services.uploads_available:
            self._attach_uploads()
        if self._check_registry_on_start:
            self.check_registry()
            self._registry_timer.start()
            self.auto_sync()
            self.set_sync_interval(self.services.ctx.settings.get(SYNC_MINUTES))

    def _attach_uploads(self) -> None:
        self.runner.start(
            lambda: self.services.uploads,
            on_result=lambda q: q is not None and self.uploads.attach(q),
            on_error=lambda exc: log.warning("upload queue unavailable: %s", exc),
        )

    def _queue_summary(self, text: str) -> None:
        if self._uploads_wait_for_key():
            self.queue_label.setText("Uploads: waiting for your key")
            if not self._told_key_wait:
                self._told_key_wait = True
                self.statusBar().showMessage(
                    "Uploads are waiting for your key: choose Registry ▸ Unlock key…", 20_000
                )
            return
        self.queue_label.setText(f"Uploads: {text}")

    def _uploads_wait_for_key(self) -> bool:
        """The upload queue stopped because the key (in its encrypted file) is locked."""
        from app.services.identity import PassphraseRequired

        uploads = self.services.__dict__.get("uploads")  # only if it was ever started
        return isinstance(getattr(uploads, "last_failure", None), PassphraseRequired)

    def unlock_key(self) -> None:
        """Registry ▸ Unlock key…: unlock now (e.g. for uploads queued in an earlier session)."""
        from app.services.signing import unlock_signer

        ctx = self.services.ctx
        self.unlocker.run(
            KeyAction(
                "unlock it for this session",
                lambda passphrase: unlock_signer(ctx, passphrase),
                on_result=lambda _key: self.statusBar().showMessage(
                    "Your key is unlocked for this session", 6000
                ),
            )
        )

    def _key_unlocked(self) -> None:
        """The key is now held by this session: a queue that stopped for it starts again."""
        uploads = self.services.__dict__.get("uploads")
        if uploads is not None and self._uploads_wait_for_key():
            uploads.last_failure = None
            self._told_key_wait = False
            self.runner.start(uploads.ensure_running)

    def _contribution_decided(self, item_id: int, state: str) -> None:
        """Accepted/rejected: tell the user even when the window is in the tray, and in the
        detail pane when that item is the one shown."""
        self._refresh_catalogue()
        if state not in ("accepted", "rejected", "submitted"):
            return
        text = {
            "accepted": f"Contribution #{item_id} was accepted by the registry",
            "rejected": f"Contribution #{item_id} was rejected; see its details for why",
            "submitted": f"Contribution #{item_id} is uploaded and waiting for the registry",
        }[state]
        self.statusBar().showMessage(text, 10_000)
        tone = {"accepted": "success", "rejected": "danger"}.get(state, "muted")
        self.catalogue.detail.show_result(item_id, text, tone)
        if self.tray is not None:
            self.tray.showMessage("Contributor Desk", text)

    # -- registry ------------------------------------------------------------------------
    @property
    def registry_url(self) -> str:
        return self.demo_url or self.services.ctx.registry_url

    def set_demo(self, url: str) -> None:
        self.demo_url = url
        self.check_registry()

    def check_registry(self) -> None:
        url = self.registry_url
        self.runner.start(
            check_registry, url, on_result=self._registry_ok, on_error=self._registry_down
        )

    def _registry_ok(self, _result: Any) -> None:
        self.registry_state = "demo" if self.demo_url else "online"
        label = "Registry: demo (local)" if self.demo_url else "Registry: online"
        self._set_registry_label(label, "success")
        if self._rewards is not None:
            self._rewards.set_offline(None)

    def _registry_down(self, exc: BaseException) -> None:
        self.registry_state = "offline"
        self._set_registry_label("Registry: offline", "warning")
        self.registry_label.setToolTip(str(exc))
        if self._rewards is not None:  # it keeps showing what is stored, saying from when
            self._rewards.set_offline(str(exc))

    def _set_registry_label(self, text: str, tone: str) -> None:
        self.registry_label.setText(f"● {text}")
        self.registry_label.setStyleSheet(f"color: {self.theme.colors[tone]};")
        self.registry_label.setToolTip(self.registry_url)

    def _refresh_catalogue(self) -> None:
        """Re-read the catalogue (states changed) and keep the selected item selected."""
        current = self.catalogue.current_id()
        self.catalogue.load()
        if current is not None:
            self.catalogue.select_item(current)

    def sync(self) -> None:
        """F5: refresh the catalogue and the registry state, then pull usage and rewards."""
        self._refresh_catalogue()
        self.check_registry()
        if self._syncing:
            return
        self._syncing = True
        if self._rewards is not None:
            self._rewards.set_syncing(True)
        self.sync_label.setText("Syncing…")
        self.unlocker.run(
            KeyAction(
                "sync usage and rewards",
                self.services.rewards.sync,
                on_result=self._synced,
                on_error=self._sync_failed,
                on_cancel=self._sync_cancelled,
                preflight=self._sync_preflight,
            )
        )

    def set_sync_interval(self, minutes: int) -> None:
        """Sync every `minutes` (0: only at start and on F5)."""
        self._sync_timer.stop()
        if minutes > 0:
            self._sync_timer.start(minutes * 60_000)

    def auto_sync(self) -> None:
        """The sync at start and every N minutes: quiet when the registry is unreachable (the
        Rewards page says "Offline — data from …"), and never a passphrase prompt: a key in
        an encrypted file that this session has not unlocked waits for F5."""
        if self._syncing:
            return

        def decided(unattended: bool) -> None:
            if unattended and not self._syncing:
                self._quiet_sync = True
                self.sync()

        self.runner.start(
            self._can_sync_unattended,
            on_result=decided,
            on_error=lambda exc: log.warning("automatic sync skipped: %s", exc),
        )

    def _can_sync_unattended(self) -> bool:
        from app.services.rewards import current_owner

        identity = self.services.identity
        if identity is None or current_owner(self.services.ctx) is None:
            return False
        return not identity.key_in_file() or self.unlocker.remembered

    def _export_rewards_csv(
        self, path: str, since: Any, until: Any, contribution_id: str | None
    ) -> None:
        """The Rewards page's CSV export, on a worker: the same service as the CLI's."""
        self.runner.start(
            self.services.rewards.export_csv,
            path,
            since,
            until,
            contribution_id,
            on_result=lambda report: self.statusBar().showMessage(
                f"Saved {report.rows:,} rows to {path}", 8000
            ),
            on_error=self.errors.show,
        )

    def _sync_preflight(self) -> None:
        """On a worker, before the key is asked for: an unreachable registry is reported as
        that (RegistryUnavailable), not as a locked key. Without an identity there is
        nothing to sync, so nothing to check."""
        from app.services.rewards import current_owner

        if current_owner(self.services.ctx) is not None:
            check_registry(self.services.ctx.registry_url)

    def _sync_cancelled(self) -> None:
        self._syncing = False
        self._quiet_sync = False
        self.sync_label.setText("Last sync: key locked")
        if self._rewards is not None:
            self._rewards.set_syncing(False)

    def _synced(self, overview: Any) -> None:
        self._syncing = False
        self._quiet_sync = False
        self.sync_label.setText(f"Last sync: {datetime.now().strftime('%H:%M')}")
        if self._rewards is not None:
            self._rewards.set_syncing(False)
            self._rewards.show_overview(overview)
        if overview is None:
            self.statusBar().showMessage(
                "Catalogue refreshed. Create your identity to sync usage and rewards.", 6000
            )

    def _sync_failed(self, exc: BaseException) -> None:
        self._syncing = False
        self.sync_label.setText("Last sync: failed")
        if self._rewards is not None:
            self._rewards.set_syncing(False)
        from app.domain.errors import RegistryUnavailable

        if isinstance(exc, RegistryUnavailable):
            self._registry_down(exc)
        if self._quiet_sync:
            self._quiet_sync = False
            why = "the registry is offline" if isinstance(exc, RegistryUnavailable) else exc
            self.statusBar().showMessage(f"Usage and rewards not synced: {why}", 8000)
            return
        self.errors.show(exc)

    # -- adding --------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.show_page("catalogue")
        self.catalogue.focus_search()

    def choose_files(self) -> list[Path]:
        """The file picker (an instance attribute can replace it, e.g. in tests)."""
        files, _ = QFileDialog.getOpenFileNames(self, "Add files to your catalogue")
        return [Path(f) for f in files]

    def choose_folder(self) -> Path | None:
        folder = QFileDialog.getExistingDirectory(self, "Add a dataset folder")
        return Path(folder) if folder else None

    def add_files(self) -> None:
        files = self.choose_files()
        if files:
            self.open_import(files)

    def add_folder(self) -> None:
        folder = self.choose_folder()
        if folder is not None:
            self.open_import([folder])

    def open_import(self, paths: list[Path]) -> ImportDialog:
        from app.ui.dialogs.import_dialog import ImportDialog  # not needed for the first paint

        if self.import_dialog is not None and self.import_dialog.isVisible():
            self.import_dialog.raise_()
            return self.import_dialog
        self.show_page("catalogue")
        dialog = ImportDialog(
            self.services.catalogue, self.runner, self.theme, paths, self.errors, self
        )
        dialog.added.connect(self.catalogue.item_added)
        self.import_dialog = dialog
        dialog.open()
        return dialog

    # -- drag and drop -------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        paths = dropped_paths(event.mimeData().urls()) if event.mimeData().hasUrls() else []
        if not paths:
            event.ignore()
            return
        folders = sum(1 for p in paths if p.is_dir())
        self.overlay.show_for(len(paths), folders)
        event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.overlay.hide()
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        self.overlay.hide()
        paths = dropped_paths(event.mimeData().urls()) if event.mimeData().hasUrls() else []
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        QTimer.singleShot(0, lambda: self.open_import(paths))

    # -- first run, about ---------------------------------------------------------------
    def show_first_run(self) -> FirstRunWizard:
        from app.ui.dialogs.first_run import FirstRunWizard

        if self.wizard is None or not self.wizard.isVisible():
            self.wizard = FirstRunWizard(self.services, self.runner, self.theme, self)
            self.wizard.finished.connect(self._first_run_finished)
            self.wizard.open()
        return self.wizard

    def _first_run_finished(self, _result: int) -> None:
        self.ui_state.setValue("firstRun/done", True)
        self.ui_state.sync()
        self.settings_view.refresh_identity()
        self.check_registry()

    def first_run_needed(self) -> bool:
        return not self.ui_state.value("firstRun/done", False, type=bool)

    def quit(self) -> None:
        """Ctrl+Q really quits, even with close-to-tray on."""
        self.quitting = True
        self.close()
        app = QApplication.instance()
        if app is not None and self.tray is not None:
            app.quit()

    def about(self) -> None:
        from app.ui.dialogs.about_dialog import AboutDialog

        self.about_dialog = AboutDialog(self.registry_url, self)
        self.about_dialog.open()

    # -- state ---------------------------------------------------------------------------
    def restore_state(self) -> None:
        geometry = self.ui_state.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        state = self.ui_state.value("window/state")
        if state is not None:
            self.restoreState(state)
        splitter = self.ui_state.value("catalogue/splitter")
        if splitter is not None:
            self.catalogue.splitter.restoreState(splitter)
        header = self.ui_state.value("catalogue/header")
        if header is not None:
            self.catalogue.table.horizontalHeader().restoreState(header)
        page = self.ui_state.value("window/page", "catalogue")
        if page in dict(PAGES) and page != "rewards":
            self.show_page(str(page))

    def save_state(self) -> None:
        self.ui_state.setValue("window/geometry", self.saveGeometry())
        self.ui_state.setValue("window/state", self.saveState())
        self.ui_state.setValue("catalogue/splitter", self.catalogue.splitter.saveState())
        self.ui_state.setValue(
            "catalogue/header", self.catalogue.table.horizontalHeader().saveState()
        )
        self.ui_state.setValue("window/page", self.current_page())
        self.ui_state.sync()

    def _close_to_tray(self) -> bool:
        from app.settings import CLOSE_TO_TRAY

        if self.services.uploads is None or not self.services.ctx.settings.get(CLOSE_TO_TRAY):
            return False
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return False
        if self.tray is None:
            self.tray = QSystemTrayIcon(app_icon(), self)
            self.tray.setToolTip("Contributor Desk — uploading in the background")
            self.tray.activated.connect(lambda _r: (self.showNormal(), self.activateWindow()))
        self.tray.show()
        return True

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.quitting and self._close_to_tray():
            self.save_state()
            self.hide()
            event.ignore()
            return
        self.save_state()
        self._registry_timer.stop()
        self.uploads.stop()
        uploads = self.services.__dict__.get("uploads")  # only if it was ever started
        if uploads is not None:
            uploads.stop()
        self.runner.cancel_all()
        self.runner.wait(10_000)
        event.accept()
        app = QApplication.instance()
        if app is not None:
            log.debug("main window closed")
