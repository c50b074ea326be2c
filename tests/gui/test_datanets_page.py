"""The "My datanets" page against the real registry: create a datanet, edit its rules (the
version goes up), and approve a contribution from the review queue."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import Qt

from app.services.context import ServiceContext
from app.ui.adapters.services import Services
from app.ui.main_window import MainWindow
from tests.integration.faults.helpers import start_registry
from tests.integration.test_datanet_choice import Owner
from tests.integration.test_datanet_review import _contribution_for, _upload_and_finalize
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path_factory.mktemp("owner-registry"))
    try:
        yield proc
    finally:
        proc.kill(signal.SIGTERM)


@pytest.fixture
def online(data_dir: Path, isolated_keyring: Path, registry: RegistryProcess) -> Iterator[Any]:
    ctx = ServiceContext(data_dir, registry_url=registry.base_url)
    services = Services(ctx)
    services.identity.init()
    try:
        yield services
    finally:
        ctx.close()


def test_create_edit_and_review_from_the_page(
    qtbot: Any, online: Services, theme: Any, registry: RegistryProcess
) -> None:
    win = MainWindow(online, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    shown: list[BaseException] = []
    win.errors.show = lambda exc, title="": shown.append(exc)  # type: ignore[method-assign]
    win.show_page("datanets")
    page = win.datanets
    qtbot.waitUntil(lambda: page.loaded, timeout=20_000)
    assert page.list.count() == 0 and page.save_button.text() == "Create datanet"

    page.id_edit.setText("harbour-birds")
    page.name_edit.setText("Harbour birds")
    page.description_edit.setPlainText("Counts of birds in the harbour")
    page.formats_edit.setText("csv, .Parquet")
    page.columns_edit.setText("species, count")
    page.review.setChecked(True)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.list.count() == 1, timeout=20_000)
    assert page.current_id() == "harbour-birds"
    view = page.owned[0]
    assert view.rules.formats == ("csv", "parquet") and view.rules_version == 1
    assert view.rules.required_columns == ("species", "count") and view.rules.review
    assert page.id_edit.isReadOnly() and "Rules version 1" in page.version_label.text()

    page.min_records.setValue(1)
    qtbot.waitUntil(page.save_button.isEnabled, timeout=10_000)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: shown or (page.owned and page.owned[0].rules_version == 2), timeout=20_000
    )
    assert not shown
    assert page.owned[0].rules.min_records == 1

    # Another key contributes; it waits in the queue with its format report.
    contributor = Owner(registry)
    try:
        body = _contribution_for(contributor, registry, "harbour-birds", 2)
        body["metadata"]["parts"] = [
            {"path": "gulls.csv", "format": "csv", "columns": ["species", "count"], "records": 1}
        ]
        r = contributor.http.post("/v1/contributions", json=body, headers=contributor.who.headers)
        assert r.status_code == 201 and r.json()["state"] == "submitted", r.text
        cid = r.json()["id"]
        _upload_and_finalize(contributor, cid)
        page.load_queue()
        qtbot.waitUntil(lambda: page.queue.topLevelItemCount() == 1, timeout=20_000)
        row = page.queue.topLevelItem(0)
        assert row.text(3) == "✓ Passed rules v2"
        assert "Format report: csv; 1 records; columns count, species" in (
            page.entry_details.text()
        )
        assert contributor.who.fingerprint in page.entry_details.text()
        assert page.tabs.tabText(1) == "Review queue (1)"

        qtbot.mouseClick(page.reject_button, Qt.MouseButton.LeftButton)  # no note: refused
        qtbot.waitUntil(lambda: page.approve_button.isEnabled(), timeout=10_000)
        assert page.queue.topLevelItemCount() == 1
        page.note_edit.setText("Thanks!")
        qtbot.mouseClick(page.approve_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.queue.topLevelItemCount() == 0, timeout=20_000)
        got = contributor.http.get(f"/v1/contributions/{cid}", headers=contributor.who.headers)
        assert got.json()["state"] == "accepted" and got.json()["reviewNote"] == "Thanks!"
    finally:
        contributor.http.close()
    win.runner.cancel_all()
    win.runner.wait(20_000)


def test_a_queue_row_summarises_the_format_report() -> None:
    from app.ui.pages.datanets_page import parts_summary

    assert parts_summary(()) == "No format report"
    parts = (
        {"format": "csv", "records": 3, "columns": ["b", "a"]},
        {"format": "images", "records": 2, "columns": []},
    )
    assert parts_summary(parts) == "csv, images; 5 records; columns a, b"
    assert httpx  # the real registry is reached over HTTP in the test above
