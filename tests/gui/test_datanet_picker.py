"""The review sheet's datanet picker against the real registry: every datanet with its
description, owner and rules; picking one re-runs the rule check live; what is signed is the
datanet picked."""

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
from tests.gui.conftest import add_item, make_csv
from tests.integration.faults.helpers import start_registry
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path_factory.mktemp("picker-registry"))
    with httpx.Client(base_url=proc.base_url, timeout=10) as http:
        owner = Contributor()
        owner.sign_in(http)  # type: ignore[arg-type]
        for net_id, name, rules, about in (
            ("tables-only", "Tables only", {"formats": ["csv"], "requiredColumns": ["a"]},
             "Clean CSV tables with an 'a' column"),
            ("big-sets", "Big sets", {"minRecords": 1000}, "At least a thousand rows"),
        ):  # fmt: skip
            r = http.post(
                "/v1/datanets",
                json={"id": net_id, "name": name, "description": about, "rules": rules},
                headers=owner.headers,
            )
            assert r.status_code == 201, r.text
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


def _open_sheet(qtbot: Any, services: Services, theme: Any, tmp_path: Path) -> tuple[Any, Any]:
    item = add_item(services, make_csv(tmp_path / "s", "s.csv", rows=5), license="CC-BY-4.0")
    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.catalogue.select_item(item.id)
    pane = win.catalogue.detail
    qtbot.waitUntil(lambda: pane.detail is not None, timeout=5000)
    qtbot.mouseClick(pane.sign_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.item_actions.sheet is not None, timeout=20_000)
    return win, win.item_actions.sheet


def test_the_picker_lists_datanets_and_checks_the_one_picked_live(
    qtbot: Any, online: Services, theme: Any, tmp_path: Path
) -> None:
    win, sheet = _open_sheet(qtbot, online, theme, tmp_path)
    picker = sheet.datanet_picker
    ids = [picker.itemData(i) for i in range(picker.count())]
    assert set(ids) == {"open-data", "tables-only", "big-sets"}
    assert sheet.picked_datanet() == "open-data"
    assert "Meets every rule" in sheet.rules.text() and sheet.go_button.isEnabled()
    assert win.statusBar().currentMessage() == ""  # not "Checking the datanet's rules…"

    picker.setCurrentIndex(picker.findData("big-sets"))
    assert not sheet.go_button.isEnabled()  # until the check of the new datanet answers
    assert sheet.datanet_about.text() == "At least a thousand rows"
    assert "Key " in sheet.datanet_owner.text()
    assert "At least 1,000 records" in sheet.datanet_rules.text()
    qtbot.waitUntil(lambda: sheet.review.datanet == "big-sets", timeout=20_000)
    assert "Minimum records rule" in sheet.rules.text()
    assert not sheet.go_button.isEnabled()

    picker.setCurrentIndex(picker.findData("tables-only"))
    qtbot.waitUntil(lambda: sheet.review.datanet == "tables-only", timeout=20_000)
    assert "s.csv: Missing required column(s) a" not in sheet.rules.text()  # 'a' is there
    assert "Meets every rule of datanet" in sheet.rules.text()
    assert sheet.go_button.isEnabled()

    # What is signed is the datanet picked.
    qtbot.mouseClick(sheet.go_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: (
            win.catalogue.detail.detail is not None
            and str(win.catalogue.detail.detail.summary.state) == "signed"
        ),
        timeout=30_000,
    )
    with online.ctx.db.session() as s:
        from app.store.models import Envelope

        env = s.query(Envelope).one()
        assert env.datanet == "tables-only"
    win.runner.cancel_all()
    win.runner.wait(20_000)


def test_the_picker_is_searchable(qtbot: Any, online: Services, theme: Any, tmp_path: Path) -> None:
    win, sheet = _open_sheet(qtbot, online, theme, tmp_path)
    completer = sheet.datanet_picker.completer()
    completer.setCompletionPrefix("sets")
    found = [
        completer.completionModel().index(i, 0).data() for i in range(completer.completionCount())
    ]
    assert found == ["Big sets — big-sets"]
    sheet.reject()
    win.runner.cancel_all()
    win.runner.wait(20_000)
