"""The Rewards page's chart data, pure: usage buckets (integers) in, series out. No widgets,
no floats: values stay integers (events, ppm, micro-units) until a chart plots them."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from app.domain.money import format_micro
from app.domain.units import method_label
from app.services.usage_history import UsageData
from app.ui.widgets.usage_charts import Series, monday

TOP_LINES = 10  # the cumulative chart draws this many contributions; the rest as one line


def usage_of(overview: Any) -> UsageData | None:
    """The usage buckets a page's overview carries (None for a bare RewardsOverview)."""
    usage = getattr(overview, "usage", None)
    return usage if isinstance(usage, UsageData) else None


def events_text(n: int) -> str:
    return f"{n:,} attributed event{'' if n == 1 else 's'}"


def effective_text(ppm: int) -> str:
    return f"{format_micro(ppm)} effective events"


def day_range(first: date, last: date, bucket_days: int) -> list[date]:
    if bucket_days == 7:
        first = monday(first)
    return [first + timedelta(days=n) for n in range(0, (last - first).days + 1, bucket_days)]


def usage_series(
    usage: UsageData | None, *, by: str = "model", measure: str = "events", bucket_days: int = 1
) -> tuple[list[date], list[Series]]:
    """One series per model (or method): attributed events (or effective usage in ppm) per
    day (or per week from Monday), zeros where there was no use, largest total first."""
    if usage is None or not usage.by_model_method:
        return [], []
    rows = usage.by_model_method
    first_day = min(r[0] for r in rows)
    buckets = day_range(first_day, max(r[0] for r in rows), bucket_days)
    first = buckets[0]
    values: dict[str, list[int]] = {}
    for d, mid, method, events, share_ppm, _micro in rows:
        key = mid if by == "model" else method
        line = values.get(key)
        if line is None:
            line = values[key] = [0] * len(buckets)
        line[(d - first).days // bucket_days] += events if measure == "events" else share_ppm
    totals = {k: sum(v) for k, v in values.items()}
    series = []
    for key in sorted(values, key=lambda k: (-totals[k], k)):
        if by == "model":
            name, demo = usage.models.get(key, (key, False))
            label = f"{name} (demo)" if demo and "demo" not in name.lower() else name
        else:
            label = method_label(key)
        series.append(Series(key, label, values[key]))
    return buckets, series


class ContributionDays:
    """Earned and events per contribution per day (one pass over the buckets), with running
    totals: the cumulative lines and the ranking of any range come from them without another
    pass over the rows."""

    def __init__(self, usage: UsageData | None) -> None:
        self.titles = usage.titles if usage is not None else {}
        rows = usage.by_contribution if usage is not None else ()
        self.days = day_range(min(r[0] for r in rows), max(r[0] for r in rows), 1) if rows else []
        first = self.days[0] if self.days else date.min
        n = len(self.days)
        self.micro: dict[str, list[int]] = {}
        self.events: dict[str, list[int]] = {}
        for d, cid, events, micro in rows:
            line = self.micro.get(cid)
            if line is None:
                line = self.micro[cid] = [0] * n
                self.events[cid] = [0] * n
            i = (d - first).days
            line[i] += micro
            self.events[cid][i] += events
        self.cum_micro = {k: list(accumulate(v)) for k, v in self.micro.items()}
        self.cum_events = {k: list(accumulate(v)) for k, v in self.events.items()}

    def cumulative(self, top: int = TOP_LINES) -> tuple[list[date], list[Series]]:
        """Earned to date per contribution per day: the `top` earners, the rest as one
        'Other contributions' line."""
        if not self.days:
            return [], []
        totals = {k: v[-1] for k, v in self.cum_micro.items()}
        order = sorted(totals, key=lambda k: (-totals[k], self.titles.get(k, k)))
        series = [Series(c, self.titles.get(c, c), self.cum_micro[c]) for c in order[:top]]
        rest = order[top:]
        if rest:
            other = [sum(col) for col in zip(*(self.cum_micro[c] for c in rest), strict=True)]
            series.append(Series("__other__", f"Other contributions ({len(rest)})", other))
        return self.days, series

    def ranking(self, first: date, last: date) -> list[tuple[str, str, int, int]]:
        """(contribution id, label, earned micro, events) in [first, last], most earned
        first; contributions with no use in the range left out."""
        if not self.days:
            return []
        i = max(0, (first - self.days[0]).days)
        j = min(len(self.days) - 1, (last - self.days[0]).days)
        if j < i:
            return []
        out = []
        for cid, cum in self.cum_micro.items():
            before_m = cum[i - 1] if i > 0 else 0
            ev = self.cum_events[cid]
            before_e = ev[i - 1] if i > 0 else 0
            if any(self.events[cid][i : j + 1]) or cum[j] != before_m:
                out.append((cid, self.titles.get(cid, cid), cum[j] - before_m, ev[j] - before_e))
        return sorted(out, key=lambda r: (-r[2], -r[3], r[1]))


def cumulative_series(
    usage: UsageData | None, top: int = TOP_LINES
) -> tuple[list[date], list[Series]]:
    """Earned to date (micro-units) per contribution per day: the `top` earners, the rest
    as one 'Other contributions' line."""
    return ContributionDays(usage).cumulative(top)


def ranking(usage: UsageData | None, first: date, last: date) -> list[tuple[str, str, int, int]]:
    """(contribution id, label, earned micro, events) in [first, last], most earned first."""
    if usage is None:
        return []
    earned: dict[str, list[int]] = {}
    for d, cid, events, micro in usage.by_contribution:
        if first <= d <= last:
            acc = earned.setdefault(cid, [0, 0])
            acc[0] += micro
            acc[1] += events
    return sorted(
        ((cid, usage.titles.get(cid, cid), v[0], v[1]) for cid, v in earned.items()),
        key=lambda r: (-r[2], -r[3], r[1]),
    )
