"""Usage over time for the charts, the CSV export and the contribution timeline, from the
catalogue's synced copy (no network): the day buckets of usage (events and effective usage,
per contribution, model and method) and the ledger entries (what was earned).

One function writes the CSV for both the GUI's export and `contributor-desk rewards --csv`,
so the two files are the same. Money is integer micro-units; the CSV also writes it as an
exact decimal in the registry's unit (six places), never through a float.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement

from app.domain.errors import NotFoundError, UsageError
from app.domain.money import format_micro
from app.services.context import ServiceContext
from app.services.rewards import RewardsReview
from app.store.models import HistoryEntry, Item
from app.store.rewards_models import KnownModel, RewardRecord, UsageDay, in_scope
from app.store.rollups import LedgerRollupDay, UsageRollupContribution, UsageRollupDay

# -- usage over time, export -----------------------------------------------------------------

CSV_COLUMNS = (
    "day",
    "contribution_id",
    "catalogue_id",
    "model_id",
    "method",
    "events",
    "effective_usage",
    "earned_micro",
    "earned",
)


@dataclass(frozen=True)
class UsageData:
    """Day buckets for the usage charts of one scope (all contributions, or one), oldest first.

    `by_model_method`: (day, model id, method, events, share ppm, reward micro) summed over
    the scope's contributions; `by_contribution`: (day, contribution id, events, reward micro).
    Effective usage is share ppm / 10^6 ("effective events")."""

    unit: str
    models: dict[str, tuple[str, bool]]  # model id -> (name, demo)
    titles: dict[str, str]  # contribution id -> "#12  Title" (or the id, for another device's)
    by_model_method: tuple[tuple[date, str, str, int, int, int], ...]
    by_contribution: tuple[tuple[date, str, int, int], ...]


@dataclass(frozen=True)
class UsageRow:
    """One CSV row: a day of one contribution's use by one model and method. `events` and
    `share_ppm` come from the usage buckets, `earned_micro` from the synced ledger entries of
    that UTC day (so the rows add up to the ledger exactly)."""

    day: date
    contribution_id: str
    item_id: int | None
    model_id: str
    method: str
    events: int
    share_ppm: int
    earned_micro: int

    def csv_fields(self) -> list[str]:
        return [
            self.day.isoformat(),
            self.contribution_id,
            "" if self.item_id is None else str(self.item_id),
            self.model_id,
            self.method,
            str(self.events),
            format_micro(self.share_ppm).replace(",", ""),
            str(self.earned_micro),
            format_micro(self.earned_micro).replace(",", ""),
        ]


@dataclass(frozen=True)
class CsvReport:
    rows: int
    events: int
    share_ppm: int
    earned_micro: int


def _labels(items: dict[str, tuple[int, str]], ids: set[str]) -> dict[str, str]:
    out = {}
    for cid in ids:
        item = items.get(cid)
        out[cid] = f"#{item[0]}  {item[1] or cid}" if item is not None else cid
    return out


def usage_data(review: RewardsReview, contribution_id: str | None = None) -> UsageData:
    """The usage buckets of all contributions (or one), for the charts. No network.

    All contributions: the rollups of the identity's synced usage (a row per day, model and
    method, and per day and contribution); one: its own usage days (its primary-key range)."""
    with review.ctx.db.session() as s:
        contributions = review.streamed(s)
        if contribution_id is None:
            days, per_c = UsageRollupDay, UsageRollupContribution
            by_mm_q = select(
                days.day,
                days.model_id,
                days.method,
                days.events,
                days.share_ppm,
                days.reward_micro,
            ).where(days.registry_key == review.registry, days.owner == review.owner)
            by_mm_q = by_mm_q.order_by(days.day)
            by_c_q = select(
                per_c.day, per_c.contribution_id, per_c.events, per_c.reward_micro
            ).where(per_c.registry_key == review.registry, per_c.owner == review.owner)
            by_c_q = by_c_q.order_by(per_c.day)  # oldest first, sorted by SQLite
        else:
            mine = (UsageDay.registry_key == review.registry) & (
                UsageDay.contribution_id == contribution_id
            )
            by_mm_q = select(
                UsageDay.day,
                UsageDay.model_id,
                UsageDay.method,
                UsageDay.events,
                UsageDay.share_ppm,
                UsageDay.reward_micro,
            ).where(mine)
            by_mm_q = by_mm_q.order_by(UsageDay.day)
            by_c_q = (
                select(
                    UsageDay.day,
                    UsageDay.contribution_id,
                    func.sum(UsageDay.events),
                    func.sum(UsageDay.reward_micro),
                )
                .where(mine)
                .group_by(UsageDay.day, UsageDay.contribution_id)
                .order_by(UsageDay.day)
            )
        by_mm = _plain(s, by_mm_q)
        by_c = _plain(s, by_c_q)
        names = {
            m.id: (m.name or m.id, m.demo)
            for m in s.scalars(select(KnownModel).where(KnownModel.registry_key == review.registry))
        }
        items = review.directory.item_ids(s, review.registry, contributions)
    models = {mid: names.get(mid, (mid, False)) for mid in sorted({r[1] for r in by_mm})}
    day = date.fromisoformat
    return UsageData(
        unit=review.directory.unit_of(review.registry),
        models=models,
        titles=_labels(items, {r[1] for r in by_c}),
        by_model_method=tuple(
            (day(d), mid, method, int(e), int(sh), int(r)) for d, mid, method, e, sh, r in by_mm
        ),
        # SQLite gives the sums as ints already: only the day is converted.
        by_contribution=tuple([(day(d), cid, e, r) for d, cid, e, r in by_c]),
    )


def _plain(s: Session, query: ClauseElement) -> Sequence[Any]:
    """The rows of `query` as the driver gives them (days as 'YYYY-MM-DD' text): SQLAlchemy's
    per-value conversion is most of the cost of reading a few hundred thousand rows."""
    compiled = query.compile(compile_kwargs={"literal_binds": True})
    return s.connection().exec_driver_sql(str(compiled)).all()


def usage_rows(
    review: RewardsReview,
    *,
    since: date | None = None,
    until: date | None = None,
    contribution_id: str | None = None,
) -> list[UsageRow]:
    """Day × contribution × model × method rows in [since, until] (inclusive, UTC days):
    events and effective usage from the usage buckets, earned from the ledger entries."""
    if since is not None and until is not None and since > until:
        raise UsageError(f"--since {since} is after --until {until}")
    with review.ctx.db.session() as s:
        contributions = review.contributions(s)
        scope = sorted(contributions) if contribution_id is None else [contribution_id]
        usage_q = select(
            UsageDay.day,
            UsageDay.contribution_id,
            UsageDay.model_id,
            UsageDay.method,
            UsageDay.events,
            UsageDay.share_ppm,
        ).where(UsageDay.registry_key == review.registry, UsageDay.contribution_id.in_(scope))
        ledger = LedgerRollupDay  # the ledger entries per UTC day (app.store.rollups)
        ledger_q = select(
            ledger.day,
            ledger.contribution_id,
            ledger.model_id,
            ledger.method,
            ledger.amount_micro,
        ).where(in_scope(ledger.scope, review.registry, review.owner))
        if contribution_id is not None:
            ledger_q = ledger_q.where(ledger.contribution_id == contribution_id)
        if since is not None:
            usage_q = usage_q.where(UsageDay.day >= since)
            ledger_q = ledger_q.where(ledger.day >= since)
        if until is not None:
            usage_q = usage_q.where(UsageDay.day <= until)
            ledger_q = ledger_q.where(ledger.day <= until)
        merged: dict[tuple[date, str, str, str], list[int]] = {}
        for d, cid, mid, method, events, share in s.execute(usage_q):
            merged[(d, cid, mid, method)] = [int(events), int(share), 0]
        for d, cid, mid, method, micro in s.execute(ledger_q):
            merged.setdefault((d, cid, mid, method), [0, 0, 0])[2] += int(micro)
        items = review.directory.item_ids(
            s, review.registry, contributions | {k[1] for k in merged}
        )
    return [
        UsageRow(d, cid, items.get(cid, (None, ""))[0], mid, method, v[0], v[1], v[2])
        for (d, cid, mid, method), v in sorted(merged.items())
    ]


def write_csv(rows: Iterable[UsageRow], out: TextIO) -> CsvReport:
    """The rows as CSV (header first, UTF-8, "\\n" line ends); their totals."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = events = share = earned = 0
    for row in rows:
        writer.writerow(row.csv_fields())
        n += 1
        events += row.events
        share += row.share_ppm
        earned += row.earned_micro
    return CsvReport(n, events, share, earned)


def export_csv(
    review: RewardsReview,
    path: Path,
    *,
    since: date | None = None,
    until: date | None = None,
    contribution_id: str | None = None,
) -> CsvReport:
    """Write the usage rows of [since, until] to `path` (replaced whole: written next to it,
    then renamed, so a failed export never leaves half a file). The GUI's export and
    `contributor-desk rewards --csv` both call this."""
    rows = usage_rows(review, since=since, until=until, contribution_id=contribution_id)
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder", hint="give a file name, e.g. usage.csv")
    tmp = path.with_name(f".{path.name}.part")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            report = write_csv(rows, fh)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return report


# -- contribution timeline -------------------------------------------------------------------

# History events of the catalogue that belong on the timeline, as people read them.
MILESTONES = {
    "added": "Catalogued",
    "signed": "Signed",
    "submitted": "Submitted",
    "pending-review": "Pending review",
    "accepted": "Accepted",
    "rejected": "Rejected",
}


@dataclass(frozen=True)
class Milestone:
    at: datetime | date  # a catalogue event's time (UTC), or a usage day
    kind: str  # catalogued | signed | submitted | accepted | rejected | first-use | first-reward
    text: str
    detail: str = ""

    @property
    def sort_key(self) -> datetime:
        at = self.at
        if isinstance(at, datetime):
            return at if at.tzinfo else at.replace(tzinfo=UTC)
        return datetime.combine(at, time.max, UTC)  # a day's use: after that day's events

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "text": self.text,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class MonthTotal:
    month: str  # "2026-11"
    events: int
    share_ppm: int
    earned_micro: int

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "events": self.events,
            "effectiveUsage": format_micro(self.share_ppm).replace(",", ""),
            "earnedMicro": self.earned_micro,
        }


@dataclass(frozen=True)
class ContributionTimeline:
    item_id: int
    title: str
    contribution_id: str | None
    unit: str
    milestones: tuple[Milestone, ...]  # oldest first
    months: tuple[MonthTotal, ...]  # oldest first

    def to_json(self) -> dict[str, Any]:
        return {
            "itemId": self.item_id,
            "title": self.title,
            "contributionId": self.contribution_id,
            "unit": self.unit,
            "milestones": [m.to_json() for m in self.milestones],
            "months": [m.to_json() for m in self.months],
        }


def contribution_timeline(
    ctx: ServiceContext, item_id: int, review: RewardsReview | None
) -> ContributionTimeline:
    """Catalogued, signed, submitted, accepted or rejected (with the reasons), first use by
    each model, first reward and monthly totals of catalogue item `item_id`, from the local
    copy only (works offline). `review`: the rewards copy to read usage from (None without an
    identity: the catalogue's events only)."""
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        if item is None:
            raise NotFoundError(f"item #{item_id} is not in the catalogue")
        title, cid = item.title, item.registry_id
        reasons = [
            str(r.get("message", r)) if isinstance(r, dict) else str(r)
            for r in (item.rejection_reasons or [])
        ]
        history = s.execute(
            select(HistoryEntry.at, HistoryEntry.event, HistoryEntry.detail)
            .where(HistoryEntry.item_id == item_id)
            .order_by(HistoryEntry.at, HistoryEntry.id)
        ).all()
    milestones: list[Milestone] = []
    for at, event, detail in history:
        if event not in MILESTONES:
            continue
        text = detail or ""
        if event == "rejected" and reasons and not text:
            text = "; ".join(reasons)
        milestones.append(
            Milestone(at, event if event != "added" else "catalogued", MILESTONES[event], text)
        )
    months: list[MonthTotal] = []
    unit = "units"
    if review is not None and cid:
        unit = review.directory.unit_of(review.registry)
        with ctx.db.session() as s:
            usage = UsageDay.registry_key == review.registry
            usage = usage & (UsageDay.contribution_id == cid)
            names = {
                m.id: m.name or m.id
                for m in s.scalars(
                    select(KnownModel).where(KnownModel.registry_key == review.registry)
                )
            }
            first_use = {
                mid: d
                for mid, d in s.execute(
                    select(UsageDay.model_id, func.min(UsageDay.day))
                    .where(usage, UsageDay.events > 0)
                    .group_by(UsageDay.model_id)
                )
            }
            rolled = LedgerRollupDay
            in_ledger = in_scope(rolled.scope, review.registry, review.owner) & (
                rolled.contribution_id == cid
            )
            for mid, first_day in s.execute(
                select(rolled.model_id, func.min(rolled.day))
                .where(in_ledger)
                .group_by(rolled.model_id)
            ):
                day = _as_date(first_day)
                if mid not in first_use or day < first_use[mid]:
                    first_use[mid] = day
            # The first paying entry itself (its time and amount): one contribution's entries,
            # read by the ledger's contribution index.
            ledger = in_scope(RewardRecord.scope, review.registry, review.owner) & (
                RewardRecord.contribution_id == cid
            )
            first_reward = s.execute(
                select(RewardRecord.at, RewardRecord.amount_micro, RewardRecord.model_id)
                .where(ledger, RewardRecord.amount_micro > 0)
                .order_by(RewardRecord.at, RewardRecord.id)
                .limit(1)
            ).first()
            month = func.substr(UsageDay.day, 1, 7)
            per_month: dict[str, list[int]] = {}
            for m, e, sh in s.execute(
                select(month, func.sum(UsageDay.events), func.sum(UsageDay.share_ppm))
                .where(usage)
                .group_by(month)
            ):
                per_month[str(m)] = [int(e), int(sh), 0]
            lmonth = func.substr(rolled.day, 1, 7)
            for m, micro in s.execute(
                select(lmonth, func.sum(rolled.amount_micro)).where(in_ledger).group_by(lmonth)
            ):
                per_month.setdefault(str(m), [0, 0, 0])[2] += int(micro)
        for mid, day in first_use.items():
            milestones.append(
                Milestone(day, "first-use", f"First used by {names.get(mid, mid)}", mid)
            )
        if first_reward is not None:
            at, micro, mid = first_reward
            milestones.append(
                Milestone(
                    at,
                    "first-reward",
                    "First reward",
                    f"{format_micro(micro, unit=unit)} from {names.get(mid, mid)}",
                )
            )
        months = [MonthTotal(m, *v) for m, v in sorted(per_month.items())]
    milestones.sort(key=lambda m: m.sort_key)
    return ContributionTimeline(item_id, title, cid, unit, tuple(milestones), tuple(months))


def _as_date(value: datetime | date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
