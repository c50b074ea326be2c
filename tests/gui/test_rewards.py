"""The Rewards page: states from synthetic overviews, then a real sync from a live registry."""

from __future__ import annotations

import re
import signal
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.domain.money import format_amount, format_micro
from app.services.rewards import ContributionRewards, RewardsOverview
from tests.integration.faults.helpers import make_desk, start_registry
from tests.support.registry_actors import Contributor
from tests.support.rewards_flow import accepted_items, entry_count, post_usage, usage_events


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
        "unit": "credits",
    }
    base.update(kw)
    return RewardsOverview(**base)


def test_the_page_says_how_many_events_await_settlement(qtbot: Any, theme: Any) -> None:
    from app.ui.pages.rewards_view import RewardsView

    view = RewardsView(theme)
    qtbot.addWidget(view)
    view.show_overview(_overview(unsettled_events=1234))
    assert view.last_sync.text().endswith(" · 1,234 events awaiting settlement")
    view.show_overview(_overview(unsettled_events=0))
    assert "awaiting" not in view.last_sync.text()


def test_states_of_the_page(qtbot: Any, theme: Any) -> None:
    from app.ui.pages.rewards_view import RewardsView

    view = RewardsView(theme)
    qtbot.addWidget(view)
    view.show_overview(None)
    assert view.stack.currentIndex() == 0 and view.empty.title.text() == "No identity yet"
    view.show_overview(_overview(entries=0, total_micro=0, daily=(), by_contribution=()))
    assert view.stack.currentIndex() == 0 and view.empty.title.text() == "No usage yet"
    assert "demo" not in view.empty.text.text()
    view.demo = True  # right after acceptance the demo has no usage yet: it says when it comes
    view.show_overview(_overview(entries=0, total_micro=0, daily=(), by_contribution=()))
    assert "builds up over the next minutes" in view.empty.text.text()

    view.show_overview(_overview())
    assert view.stack.currentIndex() == 1
    # The registry's unit is named; amounts are rounded for reading, exact in the tooltip.
    assert view.total_caption.text() == "Earned (credits)"
    assert view.total_value.text() == "3.50"
    assert view.total_value.toolTip() == "3.500001 credits exactly"  # micro-units, no float
    assert view.by_contribution.horizontalHeaderItem(1).text() == "Credits"
    assert view.by_contribution.item(0, 1).toolTip() == "3.500001 credits exactly"
    assert view.events_value.text() == "28"
    assert view.by_contribution.item(0, 0).text() == "#1  Birds"
    assert view.by_model.item(1, 0).text() == "Sim (demo)"
    assert view.by_method.item(0, 0).text() == "Influence"
    # Each attribution method says in one line what it means.
    assert view.by_method.item(0, 0).toolTip().startswith("Influence: ")
    assert view.by_method.item(1, 0).toolTip().startswith("Retrieval: ")
    assert "Exact match: " in view.method_help.toolTip()
    assert len(view.chart.heights) == 7 and view.chart.heights[0] == 0.5
    # Each bar has a tooltip: its day, what it earned, how many events.
    noon = datetime(2026, 11, 21, 12, tzinfo=UTC).timestamp()
    assert view.bar_tip(noon) == "Sat 21 Nov 2026\n0.500001 credits earned\n2 attributed events"
    assert view.bar_tip(noon + 86_400 * 30) is None  # no bar there
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
    assert view.total_value.text() == "3.50"
    assert view.chart_title.text().endswith("all contributions")
    assert not view.by_contribution.selectionModel().selectedRows()


@pytest.mark.slow
def test_first_visit_syncs_from_the_registry_and_f5_fetches_new_usage(
    qtbot: Any, theme: Any, tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    from app.ui.adapters.services import Services
    from app.ui.main_window import MainWindow

    operator = Contributor()
    registry = start_registry(tmp_path, "--operator-key", operator.public_key)
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    try:
        cids = accepted_items(desk, "wrens", "gulls")
        post_usage(registry, operator, usage_events("g", cids, 40))
        entries = entry_count(desk.ctx)
        win = MainWindow(Services(desk.ctx), theme, check_registry_on_start=False)
        qtbot.addWidget(win)
        # The evidence share runs on a worker after the sync: the page has its numbers first.
        checked: list[tuple[Any, int | None]] = []
        win.rewards_sync.evidenceChecked.connect(
            lambda report: checked.append(
                (report, None if win._rewards is None else win._rewards.overview.entries)
            )
        )
        win.show()
        win.show_page("rewards")  # never synced: the page syncs by itself
        qtbot.waitUntil(
            lambda: (
                win._rewards is not None
                and win._rewards.overview is not None
                and win._rewards.overview.entries == entries
            ),
            timeout=30_000,
        )
        view = win._rewards
        qtbot.waitUntil(lambda: bool(checked), timeout=30_000)
        (report, shown), *_ = checked
        assert shown == entries and report.events == 80 and report.entries_left == 0
        assert "Evidence: 80 events checked" in win.statusBar().currentMessage()
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
            lambda: view.total_value.text() == format_amount(wrens.reward_micro), timeout=10_000
        )
        assert view.chart_title.text().endswith("wrens")
        view.scope.setCurrentIndex(0)
        qtbot.waitUntil(
            lambda: view.total_value.text() == format_amount(view.overview.total_micro),
            timeout=10_000,
        )

        post_usage(registry, operator, usage_events("h", cids, 5))
        entries = entry_count(desk.ctx)
        qtbot.keyClick(win, Qt.Key.Key_F5)
        qtbot.waitUntil(
            lambda: view.overview is not None and view.overview.entries == entries, timeout=30_000
        )
        assert view.sync_button.isEnabled() and win.sync_label.text().startswith("Last sync: ")

        registry.kill(signal.SIGTERM)  # offline: F5 fails clearly, the page keeps its data
        errors: list[BaseException] = []
        win.errors.show = lambda exc, title="": errors.append(exc)  # type: ignore[method-assign]
        qtbot.keyClick(win, Qt.Key.Key_F5)
        qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
        # The data kept is from the last good sync, and the status bar says from when.
        assert re.fullmatch(r"Last sync: failed \(data from \d\d:\d\d\)", win.sync_label.text())
        assert view.overview is not None and view.overview.entries == entries
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


def _cli_rewards(data_dir: Path, *args: str) -> dict[str, Any]:
    import json

    from tests.integration.cli_helpers import run_cli

    out = run_cli(*args, "rewards", "--json", data_dir=data_dir)
    assert out.code == 0, out.err
    body: dict[str, Any] = json.loads(out.out)
    return body


def _assert_page_matches_cli(view: Any, cli: dict[str, Any]) -> None:
    """Every number on the page is the CLI's (the same service, the same rows)."""
    unit = cli["unit"]
    assert view.total_value.toolTip() == f"{format_micro(cli['totalMicro'], unit=unit)} exactly"
    shown = re.search(r"([\d,]+) (?:ledger )?entries", view.total_note.text())
    assert shown is not None and shown.group(1) == f"{cli['entries']:,}", view.total_note.text()
    assert view.events_value.text() == f"{sum(d['events'] for d in cli['daily']):,}"
    assert view.contrib_value.text() == str(len(cli["contributions"]))
    assert view.models_value.text() == str(len(cli["models"]))
    table = view.by_contribution
    rows = {
        table.item(r, 0).data(Qt.ItemDataRole.UserRole): (
            table.item(r, 0).text(),
            table.item(r, 1).toolTip(),
            table.item(r, 2).text().removesuffix(" ✓"),  # the mark: verified against the log
        )
        for r in range(table.rowCount())
    }
    assert rows == {
        c["contributionId"]: (
            f"#{c['itemId']}  {c['title']}",
            f"{format_micro(c['rewardMicro'], unit=unit)} exactly",
            f"{c['entries']:,}",
        )
        for c in cli["contributions"]
    }
    methods = [view.by_method.item(r, 1).toolTip() for r in range(view.by_method.rowCount())]
    assert methods == [
        f"{format_micro(m['rewardMicro'], unit=unit)} exactly" for m in cli["methods"]
    ]
    heights = list(view.chart.heights)
    assert heights == [d["rewardMicro"] / 1_000_000 for d in cli["daily"]]


def _open_rewards(qtbot: Any, services: Any, theme: Any, *, check: bool = False) -> Any:
    from app.ui.main_window import MainWindow

    win = MainWindow(services, theme, check_registry_on_start=check)
    qtbot.addWidget(win)
    win.show()
    win.show_page("rewards")
    qtbot.waitUntil(
        lambda: win._rewards is not None and win._rewards.overview is not None, timeout=30_000
    )
    return win


def _close(win: Any) -> None:
    win.runner.cancel_all()
    win.runner.wait(20_000)
    win.close()


@pytest.mark.slow
def test_a_restarted_demo_registry_on_a_new_port_keeps_the_pages_rewards(
    qtbot: Any, theme: Any, tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    """`--demo` twice on one data folder: the embedded registry comes back on another port,
    and the page shows the same rewards, titles and days, and so does the CLI."""
    import sqlite3
    from datetime import UTC

    from app.services.context import ServiceContext
    from app.services.demo import start_demo_registry
    from app.ui.adapters.services import Services

    demo = start_demo_registry(data_dir)
    desk = make_desk(tmp_path, data_dir, demo.url)
    try:
        cids = accepted_items(desk, "wrens", "gulls")
        # Accepted a week ago: the demo simulates a week of usage (it never predates that).
        week_ago = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S")
        with sqlite3.connect(demo.db_url.removeprefix("sqlite:///")) as db:
            db.execute("UPDATE contributions SET updated_at = ?", (week_ago,))
        services = Services(desk.ctx)
        services.demo_seed = demo.seed
        win = _open_rewards(qtbot, services, theme)  # never synced: syncs by itself
        qtbot.waitUntil(lambda: win._rewards.overview.entries > 0, timeout=60_000)
        first = win._rewards.overview
        assert {c.contribution_id for c in first.by_contribution} == set(cids)
        _close(win)
    finally:
        demo.stop()
        desk.ctx.close()

    again = start_demo_registry(data_dir)
    ctx = ServiceContext(data_dir, again.url)
    try:
        assert again.url != demo.url
        services = Services(ctx)
        services.demo_seed = again.seed
        win = _open_rewards(qtbot, services, theme)
        view = win._rewards
        assert view.stack.currentIndex() == 1  # not "No usage yet"
        shown = view.overview
        assert (shown.total_micro, shown.entries, shown.daily) == (
            first.total_micro,
            first.entries,
            first.daily,
        )
        assert {view.by_contribution.item(r, 0).text() for r in range(2)} == {
            "#1  wrens",
            "#2  gulls",
        }  # titles, never raw ids
        _assert_page_matches_cli(view, _cli_rewards(data_dir, "--demo"))
        from tests.integration.cli_helpers import run_cli

        plain = run_cli("rewards", data_dir=data_dir)  # the configured registry: points to it
        assert plain.code == 0 and "contributor-desk --demo rewards" in plain.out
        _close(win)
    finally:
        again.stop()
        ctx.close()


@pytest.mark.slow
def test_an_offline_start_shows_what_is_stored_and_says_so(
    qtbot: Any, theme: Any, tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    from app.services.clients import make_client
    from app.services.rewards import RewardsSync, current_owner
    from app.ui.adapters.services import Services

    operator = Contributor()
    registry = start_registry(tmp_path, "--operator-key", operator.public_key)
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    try:
        cids = accepted_items(desk, "moss", "fern")
        post_usage(registry, operator, usage_events("o", cids, 30))
        entries = entry_count(desk.ctx)
        owner = current_owner(desk.ctx)
        assert owner is not None
        client = make_client(desk.ctx)
        try:
            RewardsSync(desk.ctx, client, owner).run()
        finally:
            client.close()
        registry.kill(signal.SIGTERM)  # the app is opened with the registry unreachable

        win = _open_rewards(qtbot, Services(desk.ctx), theme, check=True)
        view = win._rewards
        qtbot.waitUntil(lambda: view.last_sync.text().startswith("Offline"), timeout=30_000)
        assert view.stack.currentIndex() == 1 and view.overview.entries == entries
        when = view.overview.last_sync
        assert when is not None
        from app.ui.text import local_time

        assert view.last_sync.text() == f"Offline — data from {local_time(when):%d %b %Y, %H:%M}"
        assert {view.by_contribution.item(r, 0).text() for r in range(2)} == {
            "#1  moss",
            "#2  fern",
        }
        _assert_page_matches_cli(view, _cli_rewards(data_dir, "--registry", registry.base_url))
        _close(win)
    finally:
        registry.kill(signal.SIGTERM)
        desk.ctx.close()


def test_date_labels_under_the_bars_never_touch(qtbot: Any, theme: Any) -> None:
    from PySide6.QtGui import QFontMetrics

    from app.ui.pages.rewards_view import DAY_SECONDS, DayAxis

    axis = DayAxis()
    metrics = QFontMetrics(axis.font)
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for days in (3, 7, 30, 90, 200, 731):
        for px in (260, 420, 700, 1300):
            low, high = start, start + days * DAY_SECONDS
            ((spacing, ticks),) = axis.tickValues(low, high, px)
            labels = axis.tickStrings(ticks, 1.0, spacing)
            assert labels, (days, px)
            widest = max(metrics.horizontalAdvance(t) for t in labels)
            assert spacing / (high - low) * px >= widest + 8, (days, px, labels)


def test_no_name_or_header_is_cut_at_1024_by_700(qtbot: Any, theme: Any) -> None:
    from app.ui.pages.rewards_view import RewardsView

    view = RewardsView(theme)
    qtbot.addWidget(view)
    view.resize(1024 - 190, 700 - 70)  # the page's share of a 1024×700 window
    view.show()
    qtbot.waitExposed(view)
    long = "city-air-quality-2025-hourly-measurements"
    view.show_overview(
        _overview(
            by_contribution=(ContributionRewards(12, "c1", long, 3_500_001, 1_234),),
            by_model=(("m1", "Llama 7B chat (fine-tuned on open data)", False, 3_500_001),),
            by_method=(("exact-match", 3_500_001),),
        )
    )
    qtbot.wait(50)
    for table in (view.by_contribution, view.by_model, view.by_method):
        header = table.horizontalHeader()
        metrics = header.fontMetrics()
        for col in range(table.columnCount()):
            text = table.horizontalHeaderItem(col).text()
            assert metrics.horizontalAdvance(text) + 16 <= header.sectionSize(col), text
            for row in range(table.rowCount()):
                cell = table.item(row, col).text()
                need = table.fontMetrics().horizontalAdvance(cell) + 12
                assert need <= table.columnWidth(col), (cell, table.columnWidth(col))
