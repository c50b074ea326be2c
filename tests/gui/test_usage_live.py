"""The usage charts, CSV export, sync cadence and History timeline against a live registry,
then with the registry stopped (everything still drawn from the catalogue's copy)."""

from __future__ import annotations

import csv
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QImage

from app.settings import SYNC_MINUTES
from tests.integration.faults.helpers import make_desk, start_registry
from tests.integration.test_usage_export import wait_settled
from tests.support.registry_actors import Contributor
from tests.support.rewards_flow import accepted_items, post_usage, usage_events

pytestmark = pytest.mark.slow


def test_sync_on_start_charts_export_and_offline_timeline(
    qtbot: Any, theme: Any, tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    from app.ui.adapters.services import Services
    from app.ui.main_window import MainWindow

    operator = Contributor()
    registry = start_registry(tmp_path, "--operator-key", operator.public_key)
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    try:
        cids = accepted_items(desk, "wrens", "gulls")
        post_usage(registry, operator, usage_events("s", cids, 60))  # 120 attributions
        wait_settled(registry, operator)

        # Sync on start: nothing asked, the Rewards page not visited.
        win = MainWindow(Services(desk.ctx), theme, check_registry_on_start=True)
        qtbot.addWidget(win)
        win.resize(1400, 1000)
        win.show()
        qtbot.waitUntil(
            lambda: re.fullmatch(r"Last sync: \d\d:\d\d", win.sync_label.text()) is not None,
            timeout=30_000,
        )
        # ... and every N minutes (the setting, default 15).
        assert win.rewards_sync.timer.isActive()
        assert win.rewards_sync.timer.interval() == SYNC_MINUTES.default * 60_000
        win.settings_view.sync_minutes.setValue(5)
        assert win.rewards_sync.timer.interval() == 5 * 60_000
        assert desk.ctx.settings.get(SYNC_MINUTES) == 5
        win.settings_view.sync_minutes.setValue(0)
        assert not win.rewards_sync.timer.isActive()

        win.show_page("rewards")
        qtbot.waitUntil(
            lambda: win._rewards is not None and win._rewards.overview is not None,
            timeout=30_000,
        )
        assert win._rewards.overview.entries > 0  # (a settling registry may group entries)
        view = win._rewards
        assert view.last_sync.text().startswith("Last synced ")
        ledger = view.overview.total_micro  # the synced ledger copy
        assert ledger > 0
        usage = view.usage_chart
        assert [s.label for s in usage.series] == ["Sync Model"]
        assert sum(usage.series[0].values) == 120  # every attribution, once
        cumulative = view.cumulative_chart
        assert sum(s.values[-1] for s in cumulative.series) == ledger
        view.breakdown.setCurrentIndex(1)
        assert {s.label for s in usage.series} == {"Influence", "Retrieval"}

        # Export: a PNG that opens, and the CSV of the service the CLI uses.
        png = view.export_chart("usage", tmp_path / "usage.png")
        assert not QImage(str(png)).isNull()
        out = tmp_path / "rows.csv"
        win.rewards_sync.export_csv(str(out), None, None, None)
        qtbot.waitUntil(out.exists, timeout=10_000)
        with out.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert sum(int(r["earned_micro"]) for r in rows) == ledger
        assert sum(int(r["events"]) for r in rows) == 120

        # Offline: the registry stops; charts, notice and the timeline come from the copy.
        registry.kill(signal.SIGTERM)
        win.check_registry()
        qtbot.waitUntil(
            lambda: view.last_sync.text().startswith("Offline — data from"), timeout=30_000
        )
        win.show_page("rewards")
        qtbot.waitUntil(lambda: view.overview is not None and not win.runner.active, timeout=30_000)
        assert sum(usage.series[0].values) + sum(usage.series[1].values) == 120
        assert sum(s.values[-1] for s in cumulative.series) == ledger
        assert view.ranking.rowCount() == 2
        win.show_page("catalogue")
        win.catalogue.select_item(1)
        pane = win.catalogue.detail
        qtbot.waitUntil(lambda: pane.timeline.topLevelItemCount() > 0, timeout=10_000)
        milestones = [
            pane.timeline.topLevelItem(i).text(1) for i in range(pane.timeline.topLevelItemCount())
        ]
        assert "Catalogued" in milestones and "Accepted" in milestones
        assert "First used by Sync Model" in milestones and "First reward" in milestones
        assert "Month" in milestones
        win.runner.cancel_all()
        win.runner.wait(20_000)
        win.close()
    finally:
        registry.kill(signal.SIGTERM)
        desk.ctx.close()
