"""The main window driven like a user: sidebar clicks, shortcuts, search, state, status bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from app.ui.main_window import MainWindow
from app.ui.widgets.detail_pane import DetailPane
from tests.gui.conftest import add_item, make_csv


def _click_sidebar(qtbot: Any, window: MainWindow, row: int) -> None:
    sidebar = window.sidebar
    rect = sidebar.visualItemRect(sidebar.item(row))
    qtbot.mouseClick(sidebar.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_sidebar_clicks_switch_pages_and_rewards_loads_lazily(
    qtbot: Any, window: MainWindow
) -> None:
    assert window.current_page() == "catalogue"
    _click_sidebar(qtbot, window, 1)
    assert window.pages.currentWidget() is window.uploads
    assert window._rewards is None
    _click_sidebar(qtbot, window, 2)
    assert window._rewards is not None
    assert window.pages.currentWidget() is window._rewards
    assert "after your first accepted contribution" in window._rewards.empty.text.text()
    _click_sidebar(qtbot, window, 3)
    assert window.pages.currentWidget() is window.datanets
    qtbot.waitUntil(lambda: window.datanets.loaded, timeout=10_000)  # offline: the cache
    _click_sidebar(qtbot, window, 4)
    assert window.pages.currentWidget() is window.settings_view


def test_shortcuts(qtbot: Any, window: MainWindow, tmp_path: Path) -> None:
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(window, Qt.Key.Key_Comma, ctrl)
    assert window.current_page() == "settings"
    qtbot.keyClick(window, Qt.Key.Key_F, ctrl)
    assert window.current_page() == "catalogue"
    qtbot.waitUntil(lambda: window.catalogue.search.hasFocus(), timeout=2000)

    asked: list[str] = []
    window.choose_files = lambda: asked.append("files") or []  # type: ignore[method-assign]
    window.choose_folder = lambda: asked.append("folder") or None  # type: ignore[method-assign]
    qtbot.keyClick(window, Qt.Key.Key_O, ctrl)
    qtbot.keyClick(window, Qt.Key.Key_O, ctrl | Qt.KeyboardModifier.ShiftModifier)
    assert asked == ["files", "folder"]
    qtbot.keyClick(window, Qt.Key.Key_2, ctrl)
    assert window.current_page() == "uploads"


def test_add_folder_button_opens_import_for_chosen_folder(
    qtbot: Any, window: MainWindow, csv_folder: Path
) -> None:
    window.choose_folder = lambda: csv_folder  # type: ignore[method-assign]
    empty_button = window.catalogue.empty.button
    assert empty_button is not None and empty_button.isVisible()
    qtbot.mouseClick(empty_button, Qt.MouseButton.LeftButton)
    dialog = window.import_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
    assert dialog.paths == [csv_folder]
    dialog.reject()


def test_the_pickers_open_at_home_then_beside_what_was_added_last(
    qtbot: Any, window: MainWindow, csv_folder: Path
) -> None:
    assert window.start_folder() == str(Path.home())
    window.choose_folder = lambda: csv_folder  # type: ignore[method-assign]
    window.add_folder()
    dialog = window.import_dialog
    assert dialog is not None
    dialog.reject()
    assert window.start_folder() == str(csv_folder.parent)


def test_typing_in_search_filters_after_debounce(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    add_item(services, make_csv(tmp_path / "a", "a.csv"), title="Traffic counts")
    add_item(services, make_csv(tmp_path / "b", "b.csv"), title="Bird songs")
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    assert win.catalogue.model.total == 2
    qtbot.keyClicks(win.catalogue.search, "bird")
    assert win.catalogue.model.total == 2  # debounced: not on every key
    qtbot.waitUntil(lambda: win.catalogue.model.total == 1, timeout=2000)
    assert win.catalogue.model.index(0, 0).data() == "Bird songs"
    assert "match" in win.catalogue.subtitle.text()
    win.catalogue.search.clear()
    qtbot.keyClicks(win.catalogue.search, "zzz")
    qtbot.waitUntil(
        lambda: win.catalogue.stack.currentWidget() is win.catalogue.no_match, timeout=2000
    )


def test_selecting_an_item_shows_its_detail(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    add_item(services, make_csv(tmp_path / "a", "a.csv", rows=7), title="Seven rows", license="MIT")
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    table = win.catalogue.table
    rect = table.visualRect(win.catalogue.model.index(0, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    pane = win.catalogue.detail
    qtbot.waitUntil(lambda: pane.detail is not None, timeout=5000)
    assert pane.title.text() == "Seven rows"
    assert pane.f_license.text() == "MIT"
    assert "7 items" in pane.subtitle.text()
    assert pane.files.topLevelItemCount() == 1
    assert pane.history.topLevelItemCount() == 1
    assert pane.submit_button.isEnabled()  # a draft can be submitted (signed on the way)
    assert "queue" in pane.submit_button.toolTip()
    assert pane.sign_button.isVisible() and pane.sign_button.isEnabled()
    assert not pane.verify_button.isEnabled()  # nothing signed yet
    # the pane on its own (no options: signing and submitting are always there) acts the same
    alone = DetailPane(theme)
    qtbot.addWidget(alone)
    alone.show()
    assert pane.detail is not None
    alone.show_detail(pane.detail)
    assert alone.sign_button.isVisible() and alone.sign_button.isEnabled()
    assert alone.submit_button.isEnabled() and "queue" in alone.submit_button.toolTip()
    assert not alone.verify_button.isEnabled()


def test_export_croissant_from_detail(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    item = add_item(services, make_csv(tmp_path / "a", "a.csv"), title="Exportable")
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    win.catalogue.select_item(item.id)
    qtbot.waitUntil(lambda: win.catalogue.detail.detail is not None, timeout=5000)
    out = tmp_path / "out.json"
    win.catalogue.choose_export_path = lambda _i, _f: out  # type: ignore[method-assign]
    win.catalogue.detail.export_croissant.trigger()
    qtbot.waitUntil(lambda: out.exists(), timeout=10_000)
    assert "Exportable" in out.read_text("utf-8")


def test_geometry_and_page_are_remembered_in_the_data_dir(
    qtbot: Any, services: Any, theme: Any
) -> None:
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    win.resize(1100, 700)
    win.show_page("settings")
    win.close()
    ini = services.ctx.data_dir / "ui-state.ini"
    assert ini.exists()
    again = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(again)
    again.show()
    # The offscreen screen is small, so Qt may clamp the width; the height proves the restore
    # (a fresh window opens at 1280x800).
    assert again.height() == 700
    assert again.ui_state.value("window/geometry") is not None
    assert again.current_page() == "settings"


def test_status_bar_says_offline_when_registry_is_down(qtbot: Any, window: MainWindow) -> None:
    window.check_registry()
    qtbot.waitUntil(lambda: window.registry_state == "offline", timeout=10_000)
    assert "offline" in window.registry_label.text()


def test_status_bar_says_demo_when_the_demo_address_answers_health(
    qtbot: Any, window: MainWindow, health_stub: str
) -> None:
    window.set_demo(health_stub)
    qtbot.waitUntil(lambda: window.registry_state == "demo", timeout=10_000)
    assert "demo" in window.registry_label.text()


def test_f5_refreshes_the_catalogue(
    qtbot: Any, window: MainWindow, services: Any, tmp_path: Path
) -> None:
    assert window.catalogue.model.total == 0
    add_item(services, make_csv(tmp_path / "late", "late.csv"), title="Added elsewhere")
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert window.catalogue.model.total == 1
    assert window.catalogue.model.index(0, 0).data() == "Added elsewhere"


def test_deferred_catalogue_loads_right_after_the_first_paint(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    add_item(services, make_csv(tmp_path / "a", "a.csv"), title="Loaded later")
    win = MainWindow(services, theme, check_registry_on_start=False, defer_catalogue=True)
    qtbot.addWidget(win)
    assert win.catalogue.stack.currentWidget() is win.catalogue.loading
    assert win.catalogue.model.rowCount() == 0
    win.show()
    qtbot.waitUntil(lambda: win.catalogue.model.total == 1, timeout=5000)
    assert win.catalogue.stack.currentWidget() is win.catalogue.splitter
    assert win.catalogue.model.index(0, 0).data() == "Loaded later"


def test_f5_keeps_the_selected_item_selected(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    add_item(services, make_csv(tmp_path / "a", "a.csv"), title="First")
    second = add_item(services, make_csv(tmp_path / "b", "b.csv"), title="Second")
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    win.catalogue.select_item(second.id)
    qtbot.waitUntil(lambda: win.catalogue.detail.detail is not None, timeout=5000)
    win.sync_action.trigger()  # F5: the catalogue is re-read
    assert win.catalogue.current_id() == second.id
    qtbot.waitUntil(
        lambda: (
            win.catalogue.detail.detail is not None
            and win.catalogue.detail.detail.summary.id == second.id
        ),
        timeout=5000,
    )
    win.runner.cancel_all()
    win.runner.wait(20_000)
