"""The main window: sidebar navigation, pages, menus, status bar, drag-and-drop anywhere.

Window geometry and state live in an ini-format QSettings file in the data dir (never the
user's global Qt settings), so tests and portable installs stay isolated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QPaintEvent,
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
from app.domain.states import State
from app.services.registry_probe import check_registry
from app.settings import SYNC_MINUTES
from app.ui.adapters.rewards_sync import RewardsSync
from app.ui.adapters.tasks import TaskRunner
from app.ui.adapters.upload_status import UploadStatus
from app.ui.dialogs.key_unlock import KeyUnlocker
from app.ui.errors import ErrorPresenter
from app.ui.pages.catalogue_view import CatalogueView
from app.ui.pages.registry import Page, PageRegistry
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
LAST_ADDED_KEY = "pickers/lastAdded"  # the file or folder added last
REGISTRY_RECHECK_MS = 60_000
# What a decided contribution's line says, in the status bar, the detail pane and the tray.
DECIDED = {
    State.ACCEPTED: ("Contribution #{} was accepted by the registry", "success"),
    State.REJECTED: ("Contribution #{} was rejected; see its details for why", "danger"),
    State.SUBMITTED: ("Contribution #{} is uploaded and waiting for the registry", "muted"),
}


def dropped_paths(urls: list[QUrl]) -> list[Path]:
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
        self._rewards: RewardsView | None = None  # built on the Rewards page's first visit
        # Usage and rewards: synced at start, every N minutes (Settings) and on F5.
        self.rewards_sync = RewardsSync(services, self.runner, self.errors, self.unlocker, self)
        self.upload_status = UploadStatus(services, self.runner, self)
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
        self.settings_view.syncIntervalChanged.connect(self.rewards_sync.set_interval)
        self.rewards_sync.syncLabel.connect(self.sync_label.setText)
        self.rewards_sync.message.connect(self.statusBar().showMessage)
        self.rewards_sync.registryUnavailable.connect(self._registry_down)
        self.rewards_sync.refreshRequested.connect(self._refresh_catalogue)
        self.rewards_sync.refreshRequested.connect(self.check_registry)
        self.upload_status.line.connect(self.queue_label.setText)
        self.upload_status.message.connect(self.statusBar().showMessage)

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
        side_layout.addWidget(self.sidebar, 1)
        root.addWidget(side)

        self.pages = QStackedWidget()
        self.catalogue = CatalogueView(self.services, self.runner, self.theme, self.errors)
        from app.ui.adapters.catalogue_actions import ActionContext
        from app.ui.adapters.evidence_actions import EvidenceActions
        from app.ui.adapters.item_actions import ItemActions

        actions = ActionContext(
            self.services, self.runner, self.errors, self.theme, self.catalogue, self
        )
        self.item_actions = ItemActions(actions, self.unlocker)
        self.evidence_actions = EvidenceActions(actions)
        self.uploads = UploadsView(None, self.runner, self.theme)
        self.settings_view = SettingsView(self.services, self.runner, self.theme, self.errors)
        self.settings_view.unlocker = self.unlocker
        from app.ui.pages.datanets_page import DatanetsPage

        self.datanets = DatanetsPage(self.services.ctx, self.runner, self.theme, self.errors)
        self.datanets.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.page_registry = PageRegistry(self.pages)
        for page in (
            Page("catalogue", "Catalogue", "catalogue", "Ctrl+1", lambda: self.catalogue),
            Page("uploads", "Uploads", "uploads", "Ctrl+2", lambda: self.uploads),
            Page(
                "rewards",
                "Rewards",
                "rewards",
                "Ctrl+3",
                self._build_rewards,
                lazy=True,  # its charts are imported on first visit
                on_show=self.rewards_sync.load,
            ),
            Page(
                "datanets",
                "My datanets",
                "datanets",
                "Ctrl+4",
                lambda: self.datanets,
                on_show=self._datanets_shown,
            ),
            Page("settings", "Settings", "settings", "Ctrl+5", lambda: self.settings_view),
        ):
            self.page_registry.register(page)
            item = QListWidgetItem(themed_icon(page.icon, self.theme.colors["text"]), page.title)
            item.setData(Qt.ItemDataRole.UserRole, page.key)
            item.setSizeHint(QSize(150, 38))
            self.sidebar.addItem(item)
        root.addWidget(self.pages, 1)
        self.setCentralWidget(central)
        self.sidebar.currentRowChanged.connect(self._page_selected)
        self.sidebar.setCurrentRow(0)
        self.catalogue.addFilesRequested.connect(self.add_files)
        self.catalogue.addFolderRequested.connect(self.add_folder)
        self.catalogue.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.item_actions.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.unlocker.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.unlocker.unlocked.connect(self.upload_status.key_unlocked)
        self.catalogue.search.setAcceptDrops(False)
        self.settings_view.themeChanged.connect(self.themeChangeRequested)
        self.settings_view.registryChanged.connect(lambda _u: self.check_registry())
        self.settings_view.createIdentityRequested.connect(self.show_first_run)
        self.uploads.summaryChanged.connect(self.upload_status.summary)
        self.uploads.contributionDecided.connect(self._contribution_decided)

    def _page_selected(self, row: int) -> None:
        if row >= 0:
            self.page_registry.show(self.page_registry.key_at(row))

    def _build_rewards(self) -> RewardsView:
        from app.ui.pages.rewards_view import RewardsView  # charts are loaded on first visit

        view = RewardsView(self.theme)
        view.demo = bool(self.demo_url)
        view.syncRequested.connect(self.sync)
        view.scopeChanged.connect(self.rewards_sync.scope)
        view.csvRequested.connect(self.rewards_sync.export_csv)
        view.evidenceRequested.connect(self.rewards_sync.export_evidence)
        view.acknowledgeRequested.connect(self.rewards_sync.acknowledge)
        self.rewards_sync.attach(view)
        self._rewards = view
        return view

    def _datanets_shown(self) -> None:
        if not self.datanets.loaded:
            self.datanets.refresh()

    def show_page(self, key: str) -> None:
        self.sidebar.setCurrentRow(self.page_registry.index(key))

    def current_page(self) -> str:
        return self.page_registry.key_at(self.sidebar.currentRow())

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
        for page in self.page_registry:
            view_menu.addAction(
                self._action(
                    page.title, QKeySequence(page.shortcut), partial(self.show_page, page.key)
                )
            )
        registry_menu = bar.addMenu("&Registry")
        self.sync_action = self._action("&Sync now", QKeySequence("F5"), self.sync, icon="sync")
        self.unlock_action = self._action("&Unlock key…", None, self.unlocker.unlock_now)
        self.unlock_action.setToolTip(
            "Unlock a key kept in an encrypted key file, e.g. so waiting uploads can continue"
        )
        registry_menu.addActions([self.sync_action, self.unlock_action])
        help_menu = bar.addMenu("&Help")
        about = self._action("&About Contributor Desk", None, self.about)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(about)

    def _action(
        self,
        text: str,
        shortcut: QKeySequence | QKeySequence.StandardKey | None,
        slot: Callable[[], object],
        icon: str | None = None,
    ) -> QAction:
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
        self.queue_label = QLabel("Uploads: queue idle")
        self.queue_label.setAccessibleName("Upload queue summary")
        for w in (self.registry_label, self.sync_label, self.queue_label):
            status.addPermanentWidget(w)

    def paintEvent(self, event: QPaintEvent) -> None:
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
        self._attach_uploads()
        if self._check_registry_on_start:
            self.check_registry()
            self._registry_timer.start()
            self.rewards_sync.auto_sync()
            self.rewards_sync.set_interval(self.services.ctx.settings.get(SYNC_MINUTES))

    def _attach_uploads(self) -> None:
        self.runner.start(
            lambda: self.services.uploads,
            on_result=self.uploads.attach,
            on_error=lambda exc: log.warning("upload queue unavailable: %s", exc),
        )

    def _contribution_decided(self, item_id: int, state: str) -> None:
        """Accepted/rejected: tell the user even when the window is in the tray, and in the
        detail pane when that item is the one shown."""
        self._refresh_catalogue()
        if state not in DECIDED:
            return
        template, tone = DECIDED[State(state)]
        text = template.format(item_id)
        self.statusBar().showMessage(text, 10_000)
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

    def _registry_ok(self, _result: object) -> None:
        self.registry_state = "demo" if self.demo_url else "online"
        label = "Registry: demo (local)" if self.demo_url else "Registry: online"
        self._set_registry_label(label, "success")
        self.rewards_sync.set_offline(None)

    def _registry_down(self, exc: BaseException) -> None:
        self.registry_state = "offline"
        self._set_registry_label("Registry: offline", "warning")
        self.registry_label.setToolTip(str(exc))
        self.rewards_sync.set_offline(str(exc))

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
        self.rewards_sync.sync()

    # -- adding --------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.show_page("catalogue")
        self.catalogue.focus_search()

    def choose_files(self) -> list[Path]:
        """The file picker (an instance attribute can replace it, e.g. in tests)."""
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add files to your catalogue", self.start_folder()
        )
        return [Path(f) for f in files]

    def choose_folder(self) -> Path | None:
        folder = QFileDialog.getExistingDirectory(self, "Add a dataset folder", self.start_folder())
        return Path(folder) if folder else None

    def start_folder(self) -> str:
        """Where the pickers open: beside what was added last, else the home folder (not the
        directory the app happened to be started from)."""
        last = self.ui_state.value(LAST_ADDED_KEY)
        if isinstance(last, str) and last and Path(last).parent.is_dir():
            return str(Path(last).parent)
        return str(Path.home())

    def add_files(self) -> None:
        files = self.choose_files()
        if files:
            self.open_import(files)

    def add_folder(self) -> None:
        folder = self.choose_folder()
        if folder is not None:
            self.open_import([folder])

    def open_import(self, paths: list[Path]) -> ImportDialog:
        if paths:
            self.ui_state.setValue(LAST_ADDED_KEY, str(paths[0]))
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
        page = str(self.ui_state.value("window/page", "catalogue"))
        if page in self.page_registry and not self.page_registry.page(page).lazy:
            self.show_page(page)

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

        if not self.services.ctx.settings.get(CLOSE_TO_TRAY):
            return False
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return False
        if self.tray is None:
            self.tray = QSystemTrayIcon(app_icon(), self)
            self.tray.setToolTip("Contributor Desk — uploading in the background")
            self.tray.activated.connect(self._show_from_tray)
        self.tray.show()
        return True

    def _show_from_tray(self, _reason: QSystemTrayIcon.ActivationReason) -> None:
        self.showNormal()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.quitting and self._close_to_tray():
            self.save_state()
            self.hide()
            event.ignore()
            return
        self.save_state()
        self._registry_timer.stop()
        self.uploads.stop()
        uploads = self.services.started_uploads()
        if uploads is not None:
            uploads.stop()
        self.runner.cancel_all()
        self.runner.wait(10_000)
        event.accept()
        app = QApplication.instance()
        if app is not None:
            log.debug("main window closed")
