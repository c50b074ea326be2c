"""Submit from the detail pane, then the Uploads page: queued while offline, pause, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from app.ui.main_window import MainWindow
from tests.gui.conftest import accept_review, add_item, make_csv


def test_submit_offline_queues_then_pause_and_cancel(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    services.identity.init()
    item = add_item(
        services, make_csv(tmp_path / "a", "a.csv", rows=20), title="To upload", license="MIT"
    )
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.uploads.queue is not None, timeout=10_000)
    win.catalogue.select_item(item.id)
    pane = win.catalogue.detail
    qtbot.waitUntil(lambda: pane.detail is not None, timeout=5000)
    qtbot.mouseClick(pane.submit_button, Qt.MouseButton.LeftButton)
    accept_review(qtbot, win)  # offline: the rules are not checked, the license is set

    # The registry is down: submitting still succeeds locally and the item waits in the queue.
    qtbot.waitUntil(
        lambda: (
            win.catalogue.model.item_at(0) is not None
            and str(win.catalogue.model.item_at(0).state) == "queued"
        ),
        timeout=20_000,
    )
    win.show_page("uploads")
    view = win.uploads
    qtbot.waitUntil(lambda: view.table.topLevelItemCount() == 1, timeout=10_000)
    row = view.table.topLevelItem(0)
    assert row.text(0) == "To upload"
    assert view.stack.currentIndex() == 1

    # Offline: it waits for the registry; nothing claims to be uploading or to end at 0m 00s.
    qtbot.waitUntil(
        lambda: view.table.topLevelItem(0).text(1) == "Waiting (offline)", timeout=10_000
    )
    qtbot.waitUntil(lambda: "waiting for the registry" in win.queue_label.text(), timeout=5000)
    assert win.queue_label.text() == "Uploads: 1 waiting for the registry"
    assert view.table.topLevelItem(0).text(4) == "—"  # no ETA
    assert view.table.topLevelItem(0).text(3) == "—"  # no rate

    def enabled() -> set[str]:
        return {name for name, b in view.buttons.items() if b.isEnabled()}

    view.table.setCurrentItem(None)
    assert enabled() == set()  # nothing selected: nothing to act on
    view.table.setCurrentItem(view.table.topLevelItem(0))
    assert enabled() == {"pause", "retry", "cancel"}

    qtbot.mouseClick(view.buttons["pause"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.table.topLevelItem(0).text(1) == "Paused", timeout=10_000)
    qtbot.waitUntil(lambda: win.queue_label.text() == "Uploads: 1 paused", timeout=5000)
    view.table.setCurrentItem(view.table.topLevelItem(0))
    assert enabled() == {"resume", "cancel"}
    qtbot.mouseClick(view.buttons["resume"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: view.table.topLevelItem(0).text(1) in ("Queued", "Waiting (offline)"),
        timeout=10_000,
    )
    view.table.setCurrentItem(view.table.topLevelItem(0))
    assert "cancel" in enabled() and "resume" not in enabled()
    qtbot.mouseClick(view.buttons["cancel"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: str(services.catalogue.get(item.id).summary.state) == "draft", timeout=10_000
    )
