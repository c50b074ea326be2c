"""Every page works at 1024×700: key columns keep their text, nothing hides behind a
scrollbar, saved layouts never collapse a column, the splitter can be seen; the first key
comes with a backup offer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QByteArray, QPoint, QSettings
from PySide6.QtWidgets import QHeaderView, QLabel, QWidget

from app.ui.adapters.catalogue_model import COL_ITEMS, COL_SIZE, COL_STATE, COL_TITLE, COL_UPDATED
from app.ui.main_window import UI_STATE_FILE, MainWindow
from app.ui.theme import resolve_theme
from tests.gui.conftest import add_item, make_csv

SMALL = (1024, 700)
LARGE = (1600, 1000)
TITLES = (
    "City air quality 2026",
    "Street objects (Pascal VOC)",
    "Café reviews with sentiment",
    "News headlines (HF datasets)",
    "Warehouse boxes (YOLO)",
)
TITLE_MIN_WIDTH = 200  # a readable title, whatever the window
TITLE_PADDING = 10 + 24 + 6  # CatalogueDelegate: left margin, icon, right margin


def _settle(qtbot: Any, win: QWidget) -> None:
    qtbot.waitExposed(win)
    qtbot.wait(50)


def _open(qtbot: Any, services: Any, theme: Any, size: tuple[int, int]) -> MainWindow:
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    _settle(qtbot, win)
    return win


def _visible_columns_fit(table: Any) -> bool:
    hh = table.horizontalHeader()
    used = sum(hh.sectionSize(c) for c in range(hh.count()) if not hh.isSectionHidden(c))
    return used <= table.viewport().width()


def _elided_titles(table: Any) -> list[str]:
    fm = table.fontMetrics()
    width = table.columnWidth(COL_TITLE)
    model = table.model()
    return [
        model.index(r, COL_TITLE).data()
        for r in range(model.rowCount())
        if fm.horizontalAdvance(model.index(r, COL_TITLE).data()) + TITLE_PADDING > width
    ]


@pytest.fixture
def catalogue(services: Any, tmp_path: Path) -> Any:
    for i, title in enumerate(TITLES):
        folder = make_csv(tmp_path / f"d{i}", name=f"part{i}.csv", rows=600_000 if i == 0 else 5)
        add_item(services, folder, title=title)
    return services


def test_catalogue_at_1024x700_keeps_titles_whole_and_needs_no_scrollbar(
    qtbot: Any, catalogue: Any, theme: Any
) -> None:
    win = _open(qtbot, catalogue, theme, SMALL)
    table = win.catalogue.table
    qtbot.waitUntil(lambda: table.model().rowCount() == len(TITLES), timeout=5000)
    hh = table.horizontalHeader()
    assert table.columnWidth(COL_TITLE) >= TITLE_MIN_WIDTH
    assert _elided_titles(table) == []
    assert _visible_columns_fit(table), "columns hide behind a horizontal scrollbar"
    assert not hh.isSectionHidden(COL_STATE)

    # Back to a large window: the columns given up come back, titles still whole.
    win.resize(*LARGE)
    qtbot.wait(50)
    for col in (COL_ITEMS, COL_SIZE, COL_STATE, COL_UPDATED):
        assert not hh.isSectionHidden(col), col
    assert _elided_titles(table) == []
    assert _visible_columns_fit(table)
    # Numbers are never elided ("600,…"): every count and size fits its column.
    fm = table.fontMetrics()
    for row in range(table.model().rowCount()):
        for col in (COL_ITEMS, COL_SIZE):
            text = table.model().index(row, col).data()
            assert fm.horizontalAdvance(text) + 12 <= table.columnWidth(col), (col, text)


def test_shrinking_and_growing_never_saves_a_collapsed_title(
    qtbot: Any, catalogue: Any, theme: Any
) -> None:
    win = _open(qtbot, catalogue, theme, LARGE)
    win.resize(*SMALL)
    qtbot.wait(50)
    win.resize(*LARGE)
    qtbot.wait(50)
    win.close()
    again = _open(qtbot, catalogue, theme, LARGE)
    table = again.catalogue.table
    qtbot.waitUntil(lambda: table.model().rowCount() == len(TITLES), timeout=5000)
    assert table.columnWidth(COL_TITLE) >= TITLE_MIN_WIDTH
    assert _elided_titles(table) == []
    hh = table.horizontalHeader()
    assert all(hh.sectionSize(c) >= 40 for c in range(hh.count()) if not hh.isSectionHidden(c))


def test_a_collapsed_layout_is_neither_saved_nor_restored(
    qtbot: Any, catalogue: Any, theme: Any
) -> None:
    win = _open(qtbot, catalogue, theme, LARGE)
    hh = win.catalogue.table.horizontalHeader()
    good = hh.saveState()
    assert not good.isEmpty()
    # Collapse the Title (what a 1024 px window used to leave behind) with Qt's own header.
    hh.setSectionResizeMode(COL_TITLE, QHeaderView.ResizeMode.Interactive)
    QHeaderView.resizeSection(hh, COL_TITLE, 0)
    hh.setSectionHidden(COL_TITLE, True)
    collapsed = QHeaderView.saveState(hh)
    assert hh.saveState().isEmpty(), "a collapsed layout must not be saved"
    assert hh.restoreState(collapsed) is False
    assert not hh.isSectionHidden(COL_TITLE)
    assert hh.sectionResizeMode(COL_TITLE) == QHeaderView.ResizeMode.Stretch
    qtbot.wait(20)
    assert win.catalogue.table.columnWidth(COL_TITLE) >= TITLE_MIN_WIDTH
    win.close()

    # Written by an older version: the next start ignores it and lays the columns out anew.
    state = QSettings(str(catalogue.ctx.data_dir / UI_STATE_FILE), QSettings.Format.IniFormat)
    state.setValue("catalogue/header", collapsed)
    state.sync()
    again = _open(qtbot, catalogue, theme, LARGE)
    assert again.catalogue.table.columnWidth(COL_TITLE) >= TITLE_MIN_WIDTH
    assert not again.catalogue.table.horizontalHeader().isSectionHidden(COL_TITLE)
    assert isinstance(good, QByteArray)


def test_a_column_dragged_to_nothing_snaps_back(qtbot: Any, catalogue: Any, theme: Any) -> None:
    win = _open(qtbot, catalogue, theme, LARGE)
    hh = win.catalogue.table.horizontalHeader()
    hh.resizeSection(COL_SIZE, 0)
    assert hh.sectionSize(COL_SIZE) >= 60


def test_the_splitter_handle_is_visible(qtbot: Any, catalogue: Any, theme: Any) -> None:
    win = _open(qtbot, catalogue, theme, SMALL)
    handle = win.catalogue.splitter.handle(1)
    assert handle.width() >= 8
    image = handle.grab().toImage()
    grip = theme.color("scroll").rgb()
    pixels = {
        image.pixel(x, y) & 0xFFFFFF for x in range(image.width()) for y in range(image.height())
    }
    assert grip & 0xFFFFFF in pixels, "the splitter handle draws nothing"


def test_uploads_rows_keep_their_names_at_1024x700(qtbot: Any, services: Any, theme: Any) -> None:
    from app.ui.adapters.upload_adapter import ContributionProgress

    win = _open(qtbot, services, theme, SMALL)
    win.show_page("uploads")
    view = win.uploads
    qtbot.waitUntil(lambda: view.queue is not None, timeout=10_000)
    view.stop()  # these rows are shown by hand: no poll of the (empty) real queue replaces them
    qtbot.waitUntil(lambda: not view._polling, timeout=10_000)
    jobs = [
        ContributionProgress(
            item_id=i,
            title=title,
            state=state,
            bytes_done=1_000_000,
            bytes_total=28_600_000,
            rate_bps=700_000.0 if state == "uploading" else 0.0,
            eta_s=39.0 if state == "uploading" else 0.0,
            last_error="the registry is unreachable (connection refused)" if i == 2 else "",
        )
        for i, (title, state) in enumerate(
            zip(TITLES, ("uploading", "offline", "failed", "paused", "accepted"), strict=True)
        )
    ]
    view._show(jobs)
    qtbot.wait(20)
    tree = view.table
    fm = tree.fontMetrics()
    width = tree.columnWidth(0)
    for i in range(tree.topLevelItemCount()):
        text = tree.topLevelItem(i).text(0)
        assert fm.horizontalAdvance(text) + tree.indentation() + 8 <= width, text
    used = sum(tree.columnWidth(c) for c in range(tree.columnCount()))
    assert used <= tree.viewport().width()
    assert tree.topLevelItem(0).text(3) == "700 KB/s"
    assert tree.topLevelItem(0).text(4) == "39s"
    assert tree.topLevelItem(1).text(4) == "—"  # offline: no ETA, never "0m 00s"

    def enabled_for(row: int) -> set[str]:
        tree.setCurrentItem(tree.topLevelItem(row))
        return {name for name, b in view.buttons.items() if b.isEnabled()}

    assert enabled_for(0) == {"pause", "cancel"}  # uploading
    assert enabled_for(1) == {"pause", "retry", "cancel"}  # offline: retry = try now
    assert enabled_for(2) == {"retry", "cancel"}  # failed
    assert enabled_for(3) == {"resume", "cancel"}  # paused
    assert enabled_for(4) == set()  # accepted: nothing to do


def test_queue_summary_words() -> None:
    from app.ui.pages.uploads_view import queue_summary

    assert queue_summary([]) == "queue idle"
    assert queue_summary(["accepted", "rejected"]) == "queue idle"
    assert queue_summary(["paused"]) == "1 paused"
    assert queue_summary(["offline", "offline", "paused"]) == (
        "2 waiting for the registry, 1 paused"
    )
    assert queue_summary(["uploading", "queued", "failed"]) == "1 uploading, 1 queued, 1 failed"


def _label_fully_shown(label: QLabel) -> bool:
    return label.height() >= label.heightForWidth(label.width())


def test_settings_connection_error_is_shown_whole_at_1024x700(
    qtbot: Any, services: Any, theme: Any
) -> None:
    win = _open(qtbot, services, theme, SMALL)
    win.show_page("settings")
    view = win.settings_view
    view.test_connection()
    qtbot.waitUntil(lambda: "unreachable" in view.registry_status.text(), timeout=10_000)
    qtbot.wait(50)
    status = view.registry_status
    assert status.isVisible()
    assert _label_fully_shown(status), (status.height(), status.heightForWidth(status.width()))
    assert status.width() >= 400
    text = status.text()
    assert ". Check" in text or text.endswith("."), text  # sentences, not ". check"


def test_first_key_offers_a_backup_that_restores(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    from app.signing.identity import fingerprint
    from app.signing.keyfile import read_key_file

    win = _open(qtbot, services, theme, SMALL)
    wizard = win.show_first_run()
    wizard.next()
    page = wizard.identity_page
    assert not page.backup_box.isVisible()
    page.run()
    qtbot.waitUntil(page.isComplete, timeout=10_000)
    qtbot.wait(50)
    # The result is inside the page, not cut off below it.
    assert page.fingerprint.isVisible()
    bottom = page.fingerprint.mapTo(page, page.fingerprint.rect().bottomLeft()).y()
    assert bottom <= page.height()
    assert page.backup_box.isVisible() and page.backup_button.isVisible()

    backup = tmp_path / "backup.key"
    page.export_backup_to(backup, "another good passphrase")
    qtbot.waitUntil(lambda: page.backup_path == backup, timeout=20_000)
    key = read_key_file(backup, "another good passphrase")
    assert fingerprint(key) == services.identity.current().fingerprint
    wizard.reject()


def test_a_late_identity_check_keeps_the_new_keys_backup_offer(
    qtbot: Any, services: Any, theme: Any
) -> None:
    """The page's check for an existing identity runs beside the form; when its answer comes
    after the user created a key, it names that key and must not turn the page into "You
    already have an identity" without the backup offer."""
    win = _open(qtbot, services, theme, SMALL)
    wizard = win.show_first_run()
    wizard.next()
    page = wizard.identity_page
    page.run()
    qtbot.waitUntil(page.isComplete, timeout=10_000)
    status = page.status.text()
    page._existing(services.current_identity())
    assert not page.backup_box.isHidden()
    assert page.status.text() == status
    assert "already" not in status
    wizard.reject()


def test_disabled_fields_look_disabled(qtbot: Any, services: Any, theme: Any) -> None:
    win = _open(qtbot, services, theme, SMALL)
    win.show_page("settings")
    box = win.settings_view.bandwidth
    enabled = box.grab().toImage()
    box.setEnabled(False)
    disabled = box.grab().toImage()
    colors = resolve_theme(theme.name).colors
    assert enabled != disabled
    # Disabled fields sit on the window background, not on the field's white surface.
    center = disabled.pixelColor(disabled.width() // 3, 3).name()
    assert center != colors["surface"]


def test_problems_of_the_whole_folder_have_no_dot_prefix(
    qtbot: Any, window: Any, tmp_path: Path
) -> None:
    from app.domain.problems import Problem, Severity

    dialog = window.open_import([make_csv(tmp_path / "a", "a.csv")])
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
    dialog._show_problems(
        [
            Problem(Severity.ERROR, "Cannot open folder '.': permission denied.", "."),
            Problem(Severity.WARNING, "'b.csv' is empty (0 bytes).", "b.csv"),
        ]
    )
    texts = [dialog.problems.item(i).text() for i in range(dialog.problems.count())]
    assert texts == [
        "Cannot open folder '.': permission denied.",
        "b.csv: 'b.csv' is empty (0 bytes).",
    ]
    dialog.reject()


def test_the_cli_and_the_gui_write_the_same_size(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    from tests.integration.cli_helpers import run_cli

    folder = tmp_path / "sized"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(b"\0" * 1_460_000)  # 1.46 MB, 1.39 MiB
    item = add_item(services, folder, title="Sized")
    win = _open(qtbot, services, theme, LARGE)
    table = win.catalogue.table
    qtbot.waitUntil(lambda: table.model().rowCount() == 1, timeout=5000)
    shown = table.model().index(0, COL_SIZE).data()
    assert shown == "1.5 MB"
    listed = run_cli("list", data_dir=services.ctx.data_dir)
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if line.strip().startswith(str(item.id)))
    assert shown in row, row
    shown_cli = run_cli("show", str(item.id), data_dir=services.ctx.data_dir)
    assert "(1.5 MB)" in shown_cli.out and "1 file " in shown_cli.out, shown_cli.out


def test_a_column_dragged_wide_leaves_the_title_its_room(
    qtbot: Any, catalogue: Any, theme: Any
) -> None:
    win = _open(qtbot, catalogue, theme, LARGE)
    table = win.catalogue.table
    hh = table.horizontalHeader()
    hh.resizeSection(COL_UPDATED, 5000)
    qtbot.wait(20)
    assert table.columnWidth(COL_TITLE) >= TITLE_MIN_WIDTH
    assert _visible_columns_fit(table)


@pytest.mark.parametrize("size", [SMALL, (1280, 800), LARGE])
def test_the_detail_pane_buttons_keep_their_labels_whole(
    qtbot: Any, catalogue: Any, theme: Any, size: tuple[int, int]
) -> None:
    """The row of actions wraps rather than squeezing a button below its label."""
    win = _open(qtbot, catalogue, theme, size)
    cat = win.catalogue
    qtbot.waitUntil(lambda: cat.table.model().rowCount() == len(TITLES), timeout=5000)
    first = cat.table.model().index(0, COL_TITLE)
    cat.table.setCurrentIndex(first)
    pane = cat.detail
    buttons = (
        pane.edit_button,
        pane.sign_button,
        pane.verify_button,
        pane.export_button,
        pane.reveal_button,
        pane.evidence_button,
    )
    qtbot.waitUntil(lambda: all(b.isVisible() for b in buttons), timeout=5000)
    qtbot.wait(50)
    for b in buttons:
        assert b.width() >= b.sizeHint().width(), (b.text(), b.width(), b.sizeHint().width())
        left = b.mapTo(pane, QPoint(0, 0)).x()
        assert 0 <= left and left + b.width() <= pane.width(), (b.text(), left, pane.width())
