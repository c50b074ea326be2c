"""The Rewards page's usage, cumulative and ranking charts from a known fixture: series
values and totals, per-method and per-week breakdowns, range changes, zoom and reset, hiding
a series, tooltip text, export as PNG, SVG and CSV rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from app.services.rewards import ContributionRewards, RewardsOverview
from app.services.usage_history import UsageData
from app.ui.adapters.rewards_adapter import with_usage

FIRST = date(2026, 11, 2)  # a Monday
DAYS = 14


def _usage() -> UsageData:
    """Two models, two methods, two contributions over 14 days. Per day d (0..13):
    m1/influence: d+1 events, 500,000 ppm each event; m2/retrieval: 10 events on even days;
    contribution c1 earns 1,000,001 micro a day, c2 earns 10 micro on even days."""
    by_mm = []
    by_c = []
    for d in range(DAYS):
        day = FIRST + timedelta(days=d)
        by_mm.append((day, "m1", "influence", d + 1, (d + 1) * 500_000, 1_000_001))
        if d % 2 == 0:
            by_mm.append((day, "m2", "retrieval", 10, 2_500_000, 10))
        by_c.append((day, "c1", d + 1, 1_000_001))
        if d % 2 == 0:
            by_c.append((day, "c2", 10, 10))
    return UsageData(
        unit="credits",
        models={"m1": ("Model One", False), "m2": ("Sim", True)},
        titles={"c1": "#1  Birds", "c2": "#2  Bees"},
        by_model_method=tuple(by_mm),
        by_contribution=tuple(by_c),
    )


def _page() -> RewardsOverview:
    usage = _usage()
    daily = tuple(
        (
            FIRST + timedelta(days=d),
            d + 1 + (10 if d % 2 == 0 else 0),
            1_000_001 + (10 if d % 2 == 0 else 0),
        )
        for d in range(DAYS)
    )
    total = sum(r for _d, _e, r in daily)
    overview = RewardsOverview(
        registry="http://r",
        owner="o",
        total_micro=total,
        entries=40,
        last_sync=datetime(2026, 11, 16, 12, 0),
        by_contribution=(
            ContributionRewards(1, "c1", "Birds", 14_000_014, 14),
            ContributionRewards(2, "c2", "Bees", 70, 7),
        ),
        by_model=(("m1", "Model One", False, 14_000_014), ("m2", "Sim", True, 70)),
        by_method=(("influence", 14_000_014), ("retrieval", 70)),
        daily=daily,
        unit="credits",
    )
    return with_usage(overview, usage)


@pytest.fixture
def view(qtbot: Any, theme: Any) -> Any:
    from app.ui.pages.rewards_view import RewardsView

    v = RewardsView(theme)
    qtbot.addWidget(v)
    v.resize(1400, 1600)
    v.show()
    qtbot.waitExposed(v)
    v.show_overview(_page())
    return v


def _noon(d: date) -> float:
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC).timestamp()


def test_usage_by_model_and_by_method_per_day_and_week(view: Any) -> None:
    chart = view.usage_chart
    # One series per model, largest total first; zeros where a model was not used.
    assert [s.key for s in chart.series] == ["m1", "m2"]
    assert [s.label for s in chart.series] == ["Model One", "Sim (demo)"]
    assert chart.series[0].values == list(range(1, 15))
    assert chart.series[1].values == [10, 0] * 7
    assert sum(sum(s.values) for s in chart.series) == 105 + 70
    assert len(chart.buckets) == DAYS and chart.legend.count() == 2
    assert chart.plot.y_label == "attributed events per day"
    # Per method: the second breakdown.
    view.breakdown.setCurrentIndex(1)
    assert [s.label for s in chart.series] == ["Influence", "Retrieval"]
    assert view.usage_title.text() == "Usage by attribution method, all contributions"
    # Effective usage: exact decimals in the tooltip, never a float's digits.
    view.measure.setCurrentIndex(1)
    assert chart.series[0].values[2] == 1_500_000
    assert chart.plot.y_label == "effective usage per day (events)"
    assert chart.tip(_noon(FIRST + timedelta(days=2)), 1.5) == (
        "Wed 04 Nov 2026\nInfluence\n1.500000 effective events"
    )
    # Per week (from Monday): two buckets holding every event.
    view.measure.setCurrentIndex(0)
    view.bucket.setCurrentIndex(1)
    assert chart.buckets == [FIRST, FIRST + timedelta(days=7)]
    assert chart.series[0].values == [sum(range(1, 8)), sum(range(8, 15))]
    assert chart.series[1].values == [40, 30]
    assert chart.plot.y_label == "attributed events per week"
    assert chart.tip(_noon(FIRST + timedelta(days=9)), 80) == (
        "Week of Mon 09 Nov 2026\nInfluence\n77 attributed events"
    )


def test_hiding_a_series_and_tooltips(view: Any) -> None:
    chart = view.usage_chart
    x = _noon(FIRST + timedelta(days=4))  # m1: 5 events, m2: 10
    assert chart.tip(x, 9.0) == "Fri 06 Nov 2026\nSim (demo)\n10 attributed events"
    assert chart.tip(x, 5.0) == "Fri 06 Nov 2026\nModel One\n5 attributed events"
    # Unticking the legend hides the line; the tooltip then only speaks of what is shown.
    item = chart.legend.item(1)
    item.setCheckState(Qt.CheckState.Unchecked)
    assert not chart.plot.is_visible("m2") and chart.plot.is_visible("m1")
    assert chart.visible_keys() == ["m1"]
    assert chart.tip(x, 9.0) == "Fri 06 Nov 2026\nModel One\n5 attributed events"
    # Hidden stays hidden when the same data comes again (a sync); ticking shows it.
    view.show_scoped(view.overview)
    assert not chart.plot.is_visible("m2")
    chart.set_visible("m2", True)
    assert chart.plot.is_visible("m2")
    assert chart.legend.item(1).checkState() == Qt.CheckState.Checked
    assert chart.tip(x + 86_400 * 40) is None  # no bucket there
    # The earned bars: exact money, six decimals, in the registry's unit.
    assert view.bar_tip(x) == "Fri 06 Nov 2026\n1.000011 credits earned\n15 attributed events"


def test_cumulative_earned_and_top_contributions_follow_the_range(view: Any) -> None:
    chart = view.cumulative_chart
    assert [s.label for s in chart.series] == ["#1  Birds", "#2  Bees"]
    assert chart.series[0].values[-1] == 14 * 1_000_001  # earned to date, micro-units
    assert chart.series[1].values[:3] == [10, 10, 20]
    assert chart.tip(_noon(FIRST + timedelta(days=13)), 14.0) == (
        "Sun 15 Nov 2026\n#1  Birds\n14.000014 credits earned to date"
    )
    # Everything: the ranking covers all days.
    view._fill_ranking()
    assert view.ranking.rowCount() == 2
    assert [view.ranking.item(r, 0).text() for r in range(2)] == ["1.  #1  Birds", "2.  #2  Bees"]
    assert view.ranking.item(0, 1).toolTip() == "14.000014 credits exactly"
    assert view.ranking.item(1, 2).text() == "70"
    # A custom range: the time axis of every chart, and the ranking, follow it.
    view.set_custom_range(FIRST + timedelta(days=1), FIRST + timedelta(days=2))
    low, high = view.chart.x_range()
    assert (low, high) == (
        datetime(2026, 11, 3, tzinfo=UTC).timestamp(),
        datetime(2026, 11, 5, tzinfo=UTC).timestamp(),
    )
    assert view.usage_chart.time_range() == (low, high)  # shared time axis
    assert view.cumulative_chart.time_range() == (low, high)
    assert view.visible_days() == (date(2026, 11, 3), date(2026, 11, 4))
    view._fill_ranking()
    assert view.ranking.item(0, 1).toolTip() == "2.000002 credits exactly"
    assert view.ranking.item(1, 1).toolTip() == "0.000010 credits exactly"
    assert view.ranking_title.text() == "Top contributions, 03 Nov – 04 Nov 2026"
    # Zoom (as the mouse wheel does), then reset back to the chosen range.
    view.chart.scale_by(0.5)
    assert view.chart.x_range()[1] - view.chart.x_range()[0] < high - low
    view.reset_zoom()
    assert view.chart.x_range() == (low, high)
    # Presets count back from today; "All" spans the data.
    view.set_range(30)
    low30, high30 = view.chart.x_range()
    assert round((high30 - low30) / 86_400) == 30 and view.range_buttons[30].isChecked()
    assert not view.range_from.isVisibleTo(view)
    view.set_range(0)
    assert view.chart.x_range() == (
        datetime(2026, 11, 2, tzinfo=UTC).timestamp(),
        datetime(2026, 11, 16, tzinfo=UTC).timestamp(),
    )


def test_many_contributions_draw_the_top_ten_and_the_rest_as_one_line() -> None:
    from app.ui.pages.rewards_view import cumulative_series

    rows = tuple((FIRST, f"c{n:02d}", 1, 1000 * (n + 1)) for n in range(15))
    usage = UsageData("credits", {}, {}, (), rows)
    _days, series = cumulative_series(usage)
    assert len(series) == 11 and series[0].key == "c14"
    assert series[-1].label == "Other contributions (5)"
    assert series[-1].values == [sum(1000 * (n + 1) for n in range(5))]
    assert sum(s.values[-1] for s in series) == sum(r[3] for r in rows)


def test_charts_export_as_png_and_svg(view: Any, tmp_path: Path) -> None:
    png = view.export_chart("usage", tmp_path / "usage.png")
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 400 and image.height() > 100
    svg = view.export_chart("cumulative", tmp_path / "cumulative.svg")
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "</svg>" in text
    earned = view.export_chart("earned", tmp_path / "earned.png")
    assert not QImage(str(earned)).isNull()
    with pytest.raises(ValueError, match="png or .svg"):
        view.export_chart("usage", tmp_path / "usage.gif")


def test_axis_labels_have_thousands_separators() -> None:
    from app.ui.widgets.usage_charts import CountAxis

    axis = CountAxis()
    assert axis.tickStrings([0.0, 12_500.0, 1_250_000.0], 1.0, 12_500.0) == [
        "0",
        "12,500",
        "1,250,000",
    ]
    assert axis.tickStrings([0.5, 1.0], 1.0, 0.5) == ["0.5", "1.0"]


def test_the_keyboard_zooms_pans_and_resets_every_chart(view: Any, qtbot: Any) -> None:
    plot = view.usage_chart.plot
    low, high = plot.x_range()
    plot.setFocus()
    qtbot.keyClick(plot, Qt.Key.Key_Plus)
    zoomed = plot.x_range()
    assert zoomed[1] - zoomed[0] < high - low
    assert view.chart.x_range() == zoomed == view.cumulative_chart.time_range()
    qtbot.keyClick(plot, Qt.Key.Key_Left)
    assert plot.x_range()[0] < zoomed[0] and view.chart.x_range() == plot.x_range()
    qtbot.keyClick(plot, Qt.Key.Key_Home)
    assert view.chart.x_range() == (low, high) == plot.x_range()


def test_the_rewards_page_needs_neither_pyqtgraph_nor_numpy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import app.ui.pages.rewards_view, app.ui.widgets.usage_series; "
        "print(sorted(m for m in ('pyqtgraph', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
