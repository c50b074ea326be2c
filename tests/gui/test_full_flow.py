"""One contributor's whole day in the GUI, against the real registry (a subprocess on loopback):
add a folder → review and sign → submit → upload → accepted → usage arrives → sync → rewards →
a failed verification: its evidence saved and the failure acknowledged from the banner.

The key is in the encrypted key file (no keyring takes it), unlocked once through the unlock
dialog with "Remember for this session"; every later step uses it without asking again.
"""

from __future__ import annotations

import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox
from sqlalchemy import select

from app.services.context import ServiceContext
from app.services.transparency import audit
from app.store.tlog_models import LogCheckpoint, LogFailure
from app.ui.adapters.services import Services
from app.ui.main_window import MainWindow
from tests.gui.conftest import accept_review, make_csv
from tests.integration.faults.helpers import start_registry
from tests.support.registry_actors import Contributor
from tests.support.rewards_flow import entry_count, post_usage

PASS = "a passphrase for the whole day"


@pytest.mark.slow
def test_add_sign_submit_upload_accept_sync_rewards(
    qtbot: Any,
    theme: Any,
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = Contributor()
    registry = start_registry(tmp_path, "--operator-key", operator.public_key)
    ctx = ServiceContext(data_dir, registry_url=registry.base_url)
    win: MainWindow | None = None
    try:
        services = Services(ctx)
        services.identity.init(PASS, use_key_file=True)
        win = MainWindow(services, theme, check_registry_on_start=True)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        shown: list[BaseException] = []
        win.errors.show = lambda exc, title="": shown.append(exc)  # type: ignore[method-assign]
        asked: list[Any] = []
        win.unlocker.dialogOpened.connect(asked.append)
        qtbot.waitUntil(lambda: win.registry_state == "online", timeout=20_000)

        # Add: the import dialog, as after a drop.
        folder = make_csv(tmp_path / "src" / "harbour_birds", "birds.csv", rows=40)
        dialog = win.open_import([folder])
        qtbot.waitUntil(lambda: dialog.preview is not None, timeout=20_000)
        dialog.title_edit.setText("Harbour birds")
        dialog.license_combo.setCurrentIndex(dialog.license_combo.findData("CC-BY-4.0"))
        qtbot.waitUntil(dialog.add_button.isEnabled, timeout=10_000)
        qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.catalogue.model.total == 1, timeout=30_000)
        pane = win.catalogue.detail
        qtbot.waitUntil(
            lambda: pane.detail is not None and pane.title.text() == "Harbour birds",
            timeout=10_000,
        )
        item_id = pane.detail.summary.id

        # Sign: the review sheet (rules checked by the live registry), then the passphrase.
        qtbot.mouseClick(pane.sign_button, Qt.MouseButton.LeftButton)
        sheet = accept_review(qtbot, win)
        assert sheet.review.rules_checked and sheet.review.license == "CC-BY-4.0"
        qtbot.waitUntil(lambda: win.unlocker.dialog is not None, timeout=20_000)
        unlock = win.unlocker.dialog
        qtbot.keyClicks(unlock.passphrase, PASS)
        unlock.remember.setChecked(True)
        qtbot.mouseClick(unlock.ok_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "Signed" in pane.result.text(), timeout=30_000)
        qtbot.waitUntil(
            lambda: pane.detail is not None and str(pane.detail.summary.state) == "signed",
            timeout=10_000,
        )

        # Submit: reviewed again, not asked again; the queue uploads and the registry decides.
        qtbot.mouseClick(pane.submit_button, Qt.MouseButton.LeftButton)
        accept_review(qtbot, win)
        qtbot.waitUntil(lambda: "Submitted" in pane.result.text(), timeout=30_000)
        assert win.catalogue.current_id() == item_id
        qtbot.waitUntil(
            lambda: str(services.catalogue.get(item_id).summary.state) == "accepted",
            timeout=60_000,
        )
        # The decision is shown where the user is looking, on the item still selected.
        qtbot.waitUntil(lambda: "accepted" in pane.result.text(), timeout=20_000)
        assert win.catalogue.current_id() == item_id
        registry_id = services.catalogue.get(item_id).registry_id
        assert registry_id
        win.show_page("uploads")
        qtbot.waitUntil(
            lambda: (
                win.uploads.table.topLevelItemCount() == 1
                and win.uploads.table.topLevelItem(0).text(1) == "Accepted"
            ),
            timeout=20_000,
        )

        # A model uses the contribution; the operator reports it to the registry.
        now = datetime.now(UTC)
        events = [
            {
                "eventId": f"day-{i}",
                "modelId": "sync-model",
                "at": (now - timedelta(minutes=5 + i)).isoformat(),
                "feeMicro": 2_000 + 100 * i,
                "attributions": [
                    {"contributionId": registry_id, "weight": 1.0, "method": "influence"}
                ],
            }
            for i in range(12)
        ]
        post_usage(registry, operator, events)
        entries = entry_count(ctx)

        # Rewards: the first visit syncs (the key is remembered: no second prompt).
        win.show_page("rewards")
        qtbot.waitUntil(
            lambda: (
                win._rewards is not None
                and win._rewards.overview is not None
                and win._rewards.overview.entries == entries
            ),
            timeout=60_000,
        )
        view = win._rewards
        assert view.stack.currentIndex() == 1
        assert view.overview.total_micro > 0
        shown_total = re.search(r"[0-9][0-9,]*(?:\.[0-9]+)?", view.total_value.text())
        assert shown_total is not None, view.total_value.text()
        assert float(shown_total.group(0).replace(",", "")) == pytest.approx(
            view.overview.total_micro / 1_000_000, abs=0.001
        )
        assert view.events_value.text() == "12"
        assert view.by_contribution.item(0, 0).text().endswith("Harbour birds")
        assert len(asked) == 1  # one passphrase prompt for the whole flow
        assert shown == []

        # A failed verification (recorded as a sync records one): the banner offers to save
        # the evidence and to acknowledge it, as `audit --export` and `--acknowledge` do.
        with ctx.db.session() as s:
            key = s.scalar(select(LogCheckpoint.registry_key).limit(1))
            assert key is not None
            s.add(LogFailure(registry_key=key, at=datetime.now(UTC), what="entry",
                             message="ledger entry 1: a test failure", evidence="{}"))  # fmt: skip
            s.commit()
        assert not audit(ctx).ok
        win.rewards_sync.load()
        qtbot.waitUntil(view.log_box.isVisible, timeout=20_000)
        assert "a test failure" in view.log_banner.text()
        target = tmp_path / "evidence.json"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
        qtbot.mouseClick(view.save_evidence_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(target.exists, timeout=20_000)
        qtbot.waitUntil(lambda: "a test failure" in target.read_text(), timeout=5_000)
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
        qtbot.mouseClick(view.acknowledge_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not view.log_box.isVisible(), timeout=20_000)
        assert audit(ctx).ok  # the CLI's audit agrees: kept, acknowledged
        assert shown == []
    finally:
        if win is not None:
            win.close()
            win.runner.cancel_all()
            win.runner.wait(20_000)
        registry.kill(signal.SIGTERM)
        ctx.close()
