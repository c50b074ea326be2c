"""Drag-and-drop with real QDragEnterEvent/QDropEvent, and the import dialog end to end."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import PySide6
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.domain.states import Kind
from app.ui.dialogs.import_dialog import ImportDialog
from app.ui.main_window import MainWindow
from tests.gui.conftest import add_item, make_csv


def drag_pos(point: QPoint) -> Any:
    """PySide6 >= 6.12 takes QPointF for drag enter/move events (QPoint is deprecated)."""
    return QPointF(point) if PySide6.__version_info__ >= (6, 12) else point


def _mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drag_and_drop(window: MainWindow, *paths: Path) -> None:
    """What a file manager does: enter, move, drop — delivered to the window."""
    mime = _mime(*paths)
    center = window.rect().center()
    actions = Qt.DropAction.CopyAction
    buttons = Qt.MouseButton.LeftButton
    mods = Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(drag_pos(center), actions, mime, buttons, mods)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    assert window.overlay.isVisible()
    move = QDragMoveEvent(drag_pos(center), actions, mime, buttons, mods)
    QApplication.sendEvent(window, move)
    drop = QDropEvent(QPointF(center), actions, mime, buttons, mods)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    assert not window.overlay.isVisible()


def _dialog(qtbot: Any, window: MainWindow) -> ImportDialog:
    qtbot.waitUntil(lambda: window.import_dialog is not None, timeout=5000)
    dialog = window.import_dialog
    assert dialog is not None
    qtbot.waitUntil(
        lambda: dialog.preview is not None or dialog.cancel_button.text() == "Close", timeout=15_000
    )
    return dialog


def test_drop_overlay_appears_and_leaves(qtbot: Any, window: MainWindow, csv_folder: Path) -> None:
    mime = _mime(csv_folder)
    enter = QDragEnterEvent(
        drag_pos(window.rect().center()),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert window.overlay.isVisible()
    assert "1 folder" in window.overlay.detail.text()
    assert window.overlay.title.text() == "Drop to add to your catalogue"
    QApplication.sendEvent(window, QDragLeaveEvent())
    assert not window.overlay.isVisible()


def test_text_drags_are_refused(window: MainWindow) -> None:
    mime = QMimeData()
    mime.setText("just words")
    enter = QDragEnterEvent(
        drag_pos(QPoint(10, 10)),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()
    assert not window.overlay.isVisible()


def test_drop_folder_then_add_shows_it_in_the_catalogue(
    qtbot: Any, window: MainWindow, csv_folder: Path
) -> None:
    drag_and_drop(window, csv_folder)
    dialog = _dialog(qtbot, window)
    assert dialog.preview is not None and dialog.preview.usable
    assert "csv" in dialog.formats.text() and "50 records" in dialog.formats.text()
    assert dialog.title_edit.text() == "City air quality"
    dialog.title_edit.clear()
    qtbot.keyClicks(dialog.title_edit, "Air quality 2026")
    line = dialog.license_combo.lineEdit()
    assert line is not None
    line.clear()
    qtbot.keyClicks(line, "CC-BY-4.0")
    assert dialog.selected_license() == "CC-BY-4.0"
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.result_item is not None, timeout=15_000)
    qtbot.waitUntil(lambda: window.catalogue.model.total == 1, timeout=5000)
    model = window.catalogue.model
    assert model.index(0, 0).data() == "Air quality 2026"
    assert model.item_at(0).license == "CC-BY-4.0"
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: window.catalogue.detail.detail is not None, timeout=5000)


def test_annotation_with_parent_dataset(
    qtbot: Any, window: MainWindow, services: Any, tmp_path: Path
) -> None:
    parent = add_item(services, make_csv(tmp_path / "images", "index.csv"), title="Street photos")
    window.catalogue.load()
    labels = make_csv(tmp_path / "labels", "labels.csv")
    dialog = window.open_import([labels])
    qtbot.waitUntil(
        lambda: dialog.preview is not None and dialog.parent_combo.count() > 1, timeout=15_000
    )
    dialog.kind_combo.setCurrentIndex(1)
    assert dialog.parent_combo.isEnabled()
    dialog.parent_combo.setCurrentIndex(dialog.parent_combo.findData(parent.id))
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.result_item is not None, timeout=15_000)
    item = dialog.result_item
    assert item.kind == Kind.ANNOTATION and item.parent_id == parent.id
    qtbot.waitUntil(lambda: window.catalogue.model.rowCount() == 2, timeout=5000)
    assert window.catalogue.model.row_of(item.id) == window.catalogue.model.row_of(parent.id) + 1


def test_dropping_an_empty_folder_explains_why(
    qtbot: Any, window: MainWindow, tmp_path: Path
) -> None:
    empty = tmp_path / "nothing here"
    empty.mkdir()
    drag_and_drop(window, empty)
    dialog = _dialog(qtbot, window)
    assert not dialog.add_button.isEnabled()
    expected = "This cannot be added: folder is empty: there are no files to add."
    assert dialog.status.text() == expected
    dialog.reject()


def test_dropping_a_symlink_loop_explains_why(
    qtbot: Any, window: MainWindow, tmp_path: Path
) -> None:
    loop = tmp_path / "loop"
    loop.mkdir()
    os.symlink(loop, loop / "again")
    os.symlink(tmp_path / "missing", loop / "dangling")
    drag_and_drop(window, loop)
    dialog = _dialog(qtbot, window)
    assert not dialog.add_button.isEnabled()
    text = (
        dialog.status.text().lower()
        + " "
        + " ".join(dialog.problems.item(i).text().lower() for i in range(dialog.problems.count()))
    )
    assert "link" in text


def test_bad_file_is_explained_in_the_dialog(
    qtbot: Any, window: MainWindow, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.csv"
    dialog = window.open_import([missing])
    qtbot.waitUntil(lambda: dialog.cancel_button.text() == "Close", timeout=10_000)
    assert not dialog.add_button.isEnabled()
    assert "gone.csv" in dialog.status.text() and "does not exist" in dialog.status.text()
    assert window.catalogue.model.total == 0


@pytest.mark.slow
def test_cancelling_a_hash_adds_nothing(
    qtbot: Any, window: MainWindow, services: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    big = folder / "big.bin"
    with big.open("wb") as fh:  # real bytes: zeros would still be hashed, but make it honest
        chunk = os.urandom(1 << 20)
        for _ in range(400):
            fh.write(chunk)
    dialog = window.open_import([folder])
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=15_000)
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert dialog.hashing
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=15_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.hashing, timeout=15_000)
    assert "Nothing was added" in dialog.status.text()
    assert dialog.isVisible()
    assert services.catalogue.count() == 0
    dialog.reject()
    assert not dialog.isVisible()
