"""The Rewards page: states from synthetic overviews, then a real sync from a live registry."""

from __future__ import annotations

import signal
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.domain.money import format_micro
from app.services.rewards import ContributionRewards, RewardsOverview
from tests.integration.faults.helpers import make_desk, start_registry
from tests.support.registry_actors import Contributor
from tests.support.rewards_flow import accepted_items, post_usage, usage_events


def _overview(**kw: Any) -> RewardsOverview:
    base: dict[str, Any] = {
        "registry": "http://r",
        "owner": "o",
        "total_micro": 3_500_001,
        "entries": 3,
        "last_sync": datetime(2026, 11, 26, 12, 0),
        "by_contribution": (ContributionRewards(1, "c1", "Birds", 3_500_001, 3),),
        "by_model": (("m1", "Model One", False, 2_000_000), ("d", "Sim", True, 1_500_001)),
        "by_method": (("influence", 3_000_000), ("retrieval", 500_001)),
        "daily": tuple(
            (date(2026, 11, 20) + timedelta(days=i), i + 1, 500_000 + i) for i in range(7)
        ),
    }
    base.update(kw)
    return RewardsOverview(**base)


def test_states_of_the_page(qtbot: Any, theme: Any) -> None:
    from app.ui.rewards_view import RewardsView

    view = RewardsView(theme)
    qtbot.addWidget(view)
    view.show_overview(None)
    assert view.stack.currentIndex() == 0 and view.empty.title.text() == "No identity yet"
    view.show_overview(_overview(entries=0, total_micro=0, daily=(), by_contribution=()))
    assert view.stack.currentIndex() == 0 and view.empty.title.text() == "No usage yet"

    view.show_overview(_overview())
    assert view.stack.currentIndex() == 1
    assert view.total_value.text() == "3.500001"  # exact micro-units, never a float
    assert view.events_value.text() == "28"
    assert view.by_contribution.item(0, 0).text() == "#1  Birds"
    assert view.by_model.item(1, 0).text() == "Sim (demo)"
    assert view.by_method.item(0, 0).text() == "Influence"
    assert len(view.bars.opts["height"]) == 7 and view.bars.opts["height"][0] == 0.5
    with qtbot.waitSignal(view.syncRequested, timeout=1000):
        qtbot.mouseClick(view.sync_button, Qt.MouseButton.LeftButton)

    # Picking a contribution in the table asks for its own overview and moves the Show box.
    assert view.scope.count() == 2 and view.scope.currentData() is None
    with qtbot.waitSignal(view.scopeChanged, timeout=1000) as picked:
        view.by_contribution.selectRow(0)
    assert picked.args == ["c1"] and view.scope.currentData() == "c1"
    view.show_scoped(_overview(total_micro=7, entries=1, daily=((date(2026, 11, 1), 1, 7),)))
    assert view.total_value.text() == "0.000007" and view.chart_title.text().endswith("Birds")
    assert view.contrib_value.text() == "1"  # the contribution list stays the whole history
    view.scope.setCurrentIndex(0)  # all contributions: shown from the overview in hand
    assert view.total_value.text() == "3.500001"
    assert view.chart_title.text().endswith("all contributions")
    assert not view.by_contribution.selectionModel().selectedRows()


@pytest.mark.slow
def test_first_visit_syncs_from_the_registry_and_f5_fetches_new_usage(
    qtbot: Any, theme: Any, tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    from app.ui.main_window import MainWindow
    from app.ui.services import Services

    operator = Contributor()
    registry = start_registry(tmp_path, "--operator-key", operator.public_key)
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    try:
        cids = accepted_items(desk, "wrens", "gulls")
        post_usage(registry, operator, usage_events("g", cids, 40))
        win = MainWindow(Services(desk.ctx), theme, check_registry_on_start=False)
        qtbot.addWidget(win)
        win.show()
        win.show_page("rewards")  # never synced: the page syncs by itself
        qtbot.waitUntil(
            lambda: (
                win._rewards is not None
                and win._rewards.overview is not None
                and win._rewards.overview.entries == 80
            ),
            timeout=30_000,
        )
        view = win._rewards
        assert view.stack.currentIndex() == 1
        assert {view.by_contribution.item(r, 0).text() for r in range(2)} == {
            "#1  wrens",
            "#2  gulls",
        }
        assert view.events_value.text() == "80"
        # One contribution alone: its own total and chart, from the catalogue.
        wrens = next(c for c in view.overview.by_contribution if c.title == "wrens")
        view.scope.setCurrentIndex(view.scope.findData(wrens.contribution_id))
        qtbot.waitUntil(
            lambda: view.total_value.text() == format_micro(wrens.reward_micro), timeout=10_000
        )
        assert view.chart_title.text().endswith("wrens")
        view.scope.setCurrentIndex(0)
        qtbot.waitUntil(
            lambda: view.total_value.text() == format_micro(view.overview.total_micro),
            timeout=10_000,
        )

        post_usage(registry, operator, usage_events("h", cids, 5))
        qtbot.keyClick(win, Qt.Key.Key_F5)
        qtbot.waitUntil(
            lambda: view.overview is not None and view.overview.entries == 90, timeout=30_000
        )
        assert view.sync_button.isEnabled() and win.sync_label.text().startswith("Last sync: ")

        registry.kill(signal.SIGTERM)  # offline: F5 fails clearly, the page keeps its data
        errors: list[BaseException] = []
        win.errors.show = lambda exc, title="": errors.append(exc)  # type: ignore[method-assign]
        qtbot.keyClick(win, Qt.Key.Key_F5)
        qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
        assert win.sync_label.text() == "Last sync: failed"
        assert view.overview is not None and view.overview.entries == 90
        assert view.stack.currentIndex() == 1
        win.runner.cancel_all()
        win.runner.wait(20_000)
    finally:
        registry.kill(signal.SIGTERM)
        desk.ctx.close()


def test_the_automatic_first_sync_fails_quietly_offline(
    qtbot: Any, window: Any, services: Any
) -> None:
    services.identity.init()
    shown: list[BaseException] = []
    window.errors.show = lambda exc, title="": shown.append(exc)
    window.show_page("rewards")  # never synced and the registry is down
    qtbot.waitUntil(lambda: window.sync_label.text() == "Last sync: failed", timeout=30_000)
    assert shown == []  # no dialog for a page visit
    assert "not synced" in window.statusBar().currentMessage()
    view = window._rewards
    assert view.stack.currentIndex() == 0 and view.sync_button.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_F5)  # asked for explicitly: now the error is shown
    qtbot.waitUntil(lambda: bool(shown), timeout=30_000)
