"""Contributor reads: usage time series, rewards after a cursor, summary; and the model list.

Everything a contributor reads is filtered by the caller's keys (including keys they rotated
away from), and a contribution that is not theirs answers 404 exactly like one that does not
exist, so nobody learns about other tenants' contributions. Series and summaries come from the
pre-aggregated day buckets, never from a scan of the events.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.orm import InstrumentedAttribute

from registry.auth import CurrentPrincipal, as_utc
from registry.contributions import get_owned
from registry.db.models import Contribution
from registry.db.session import DbSession
from registry.db.usage_models import KIND_CONTRIBUTOR, LedgerEntry, Model, UsageBucket
from registry.errors import ERROR_RESPONSES, ApiError
from registry.routes.usage import MODEL_ID, ModelOut, model_out

router = APIRouter(tags=["usage"], responses=ERROR_RESPONSES)

DEFAULT_DAYS = 90
MAX_RANGE_DAYS = 731
CURSOR = r"^[0-9]{1,18}$"
ID_PATTERN = r"^[A-Za-z0-9._-]{1,40}$"


class UsagePoint(BaseModel):
    start: date = Field(description="First day of the bucket (UTC; weeks start on Monday)")
    events: int = Field(description="Attributed events in the bucket")
    sharePpm: int = Field(description="Sum of this contribution's normalised shares, in ppm")
    rewardMicro: int


class UsageSeries(BaseModel):
    modelId: str
    method: str
    points: list[UsagePoint] = Field(description="Buckets with usage only, oldest first")


class UsageTotals(BaseModel):
    events: int
    rewardMicro: int


class UsageResponse(BaseModel):
    contributionId: str
    bucket: Literal["day", "week"]
    since: date
    until: date = Field(description="Inclusive")
    series: list[UsageSeries]
    totals: UsageTotals


class RewardEntry(BaseModel):
    cursor: str = Field(description="Ledger id; pass as ?after= to continue after this entry")
    eventId: str
    contributionId: str
    modelId: str
    method: str
    amountMicro: int
    at: datetime
    demo: bool


class RewardsPage(BaseModel):
    items: list[RewardEntry]
    nextCursor: str | None = Field(
        description="Give as ?after= next time; unchanged when nothing new (null if never any)"
    )
    hasMore: bool


class ContributionTotals(BaseModel):
    contributionId: str
    title: str
    events: int
    sharePpm: int
    rewardMicro: int


class ModelTotals(BaseModel):
    modelId: str
    name: str
    demo: bool
    events: int
    rewardMicro: int


class ContributionTotalsPage(BaseModel):
    items: list[ContributionTotals]
    nextCursor: str | None = Field(description="Give as ?after= for the next contributions")
    hasMore: bool


class SummaryResponse(BaseModel):
    rewardMicro: int = Field(description="All rewards of the caller's contributions")
    events: int
    contributions: ContributionTotalsPage = Field(
        description="Per contribution, ordered by id, paged with after/limit"
    )
    models: list[ModelTotals] = Field(description="Per model, most rewarded first")


class ModelPage(BaseModel):
    items: list[ModelOut]
    nextCursor: str | None = Field(description="Give as ?after= for the next page")
    hasMore: bool


_LOW_BITS = 32


def exact_sum(column: InstrumentedAttribute[int]) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """SUM of a non-negative BIGINT column as two sums that cannot overflow (high and low 32
    bits, each under 2**63 for fewer than 2**31 rows); `join_sum` adds them up in Python.

    Each stored value is bounded (registry.ledger), but a sum over many buckets of events or
    sharePpm is not, and SQLite's SUM raises "integer overflow" past 2**63 - 1."""
    # Integer division and remainder (both databases, non-negative values); a literal, so
    # PostgreSQL types it as BIGINT.
    base: ColumnElement[int] = literal_column(str(1 << _LOW_BITS))
    high = func.coalesce(func.sum(column.op("/")(base)), 0)
    low = func.coalesce(func.sum(column.op("%")(base)), 0)
    return high, low


def join_sum(high: Any, low: Any) -> int:
    """The exact total of an `exact_sum` pair (ints, or Decimals on PostgreSQL)."""
    return (int(high) << _LOW_BITS) + int(low)


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


@router.get(
    "/v1/contributions/{contribution_id}/usage",
    response_model=UsageResponse,
    summary="Usage time series of one of your contributions, by model and method",
)
def contribution_usage(
    session: DbSession,
    principal: CurrentPrincipal,
    contribution_id: Annotated[str, Path(pattern=ID_PATTERN)],
    bucket: Literal["day", "week"] = "day",
    since: Annotated[date | None, Query(description="First day (default: 90 days ago)")] = None,
    until: Annotated[date | None, Query(description="Last day, inclusive (default: today)")] = None,
) -> UsageResponse:
    get_owned(session, principal, contribution_id)
    until = until or datetime.now(UTC).date()
    try:
        since = since or until - timedelta(days=DEFAULT_DAYS - 1)
        if bucket == "week":
            since = _week_start(since)
    except OverflowError:
        raise ApiError(422, "invalid_range", "The dates are out of range.") from None
    if since > until:
        raise ApiError(422, "invalid_range", "'since' must not be after 'until'.")
    if (until - since).days + 1 > MAX_RANGE_DAYS:
        raise ApiError(422, "range_too_large", f"Ask for at most {MAX_RANGE_DAYS} days at a time.")
    rows = session.execute(
        select(
            UsageBucket.model_id,
            UsageBucket.method,
            UsageBucket.bucket_start,
            UsageBucket.events,
            UsageBucket.share_ppm_sum,
            UsageBucket.reward_micro,
        )
        .where(
            UsageBucket.contribution_id == contribution_id,
            UsageBucket.bucket_start >= since,
            UsageBucket.bucket_start <= until,
        )
        .order_by(UsageBucket.model_id, UsageBucket.method, UsageBucket.bucket_start)
    ).all()
    grouped: dict[tuple[str, str], dict[date, list[int]]] = defaultdict(dict)
    for model_id, method, day, events, share, reward in rows:
        start = _week_start(day) if bucket == "week" else day
        point = grouped[(model_id, method)].setdefault(start, [0, 0, 0])
        point[0] += events
        point[1] += share
        point[2] += reward
    series = [
        UsageSeries(
            modelId=model_id,
            method=method,
            points=[
                UsagePoint(start=start, events=p[0], sharePpm=p[1], rewardMicro=p[2])
                for start, p in sorted(points.items())
            ],
        )
        for (model_id, method), points in sorted(grouped.items())
    ]
    return UsageResponse(
        contributionId=contribution_id,
        bucket=bucket,
        since=since,
        until=until,
        series=series,
        totals=UsageTotals(events=sum(r[3] for r in rows), rewardMicro=sum(r[5] for r in rows)),
    )


@router.get(
    "/v1/me/rewards",
    response_model=RewardsPage,
    summary="Ledger entries of your contributions after a cursor (incremental sync)",
)
def my_rewards(
    session: DbSession,
    principal: CurrentPrincipal,
    after: Annotated[str | None, Query(pattern=CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> RewardsPage:
    """Cursors are ledger ids, which become visible in increasing order, so a client that
    stores `nextCursor` and asks again later sees every entry exactly once."""
    start = int(after) if after is not None else 0
    rows = session.execute(
        select(
            LedgerEntry.id,
            LedgerEntry.event_id,
            LedgerEntry.contribution_id,
            LedgerEntry.model_id,
            LedgerEntry.method,
            LedgerEntry.amount_micro,
            LedgerEntry.at,
            LedgerEntry.demo,
        )
        .where(
            LedgerEntry.owner_fingerprint.in_(principal.all_fingerprints),
            LedgerEntry.kind == KIND_CONTRIBUTOR,
            LedgerEntry.id > start,
        )
        .order_by(LedgerEntry.id)
        .limit(limit + 1)
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    items = [
        RewardEntry(
            cursor=str(r.id),
            eventId=r.event_id,
            contributionId=r.contribution_id or "",
            modelId=r.model_id,
            method=r.method or "",
            amountMicro=r.amount_micro,
            at=as_utc(r.at),
            demo=r.demo,
        )
        for r in rows
    ]
    next_cursor = items[-1].cursor if items else after
    return RewardsPage(items=items, nextCursor=next_cursor, hasMore=has_more)


@router.get(
    "/v1/me/summary",
    response_model=SummaryResponse,
    summary="Totals of your usage and rewards, per contribution and per model",
)
def my_summary(
    session: DbSession,
    principal: CurrentPrincipal,
    after: Annotated[str | None, Query(pattern=ID_PATTERN, description="Contribution id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SummaryResponse:
    owned = Contribution.owner_fingerprint.in_(principal.all_fingerprints)
    join = UsageBucket.contribution_id == Contribution.id
    events_sum = exact_sum(UsageBucket.events)
    share_sum = exact_sum(UsageBucket.share_ppm_sum)
    reward_sum = exact_sum(UsageBucket.reward_micro)
    totals = session.execute(
        select(*events_sum, *reward_sum)
        .select_from(UsageBucket)
        .join(Contribution, join)
        .where(owned)
    ).one()
    events, reward = join_sum(totals[0], totals[1]), join_sum(totals[2], totals[3])
    per_contribution = (
        select(Contribution.id, Contribution.title, *events_sum, *share_sum, *reward_sum)
        .select_from(Contribution)
        .outerjoin(UsageBucket, join)
        .where(owned)
    )
    if after is not None:
        per_contribution = per_contribution.where(Contribution.id > after)
    crow = session.execute(
        per_contribution.group_by(Contribution.id, Contribution.title)
        .order_by(Contribution.id)
        .limit(limit + 1)
    ).all()
    more = len(crow) > limit
    crow = crow[:limit]
    mrows = session.execute(
        select(UsageBucket.model_id, Model.name, Model.demo, *events_sum, *reward_sum)
        .select_from(UsageBucket)
        .join(Contribution, join)
        .join(Model, Model.id == UsageBucket.model_id)
        .where(owned)
        .group_by(UsageBucket.model_id, Model.name, Model.demo)
    ).all()
    models = sorted(
        (
            ModelTotals(
                modelId=m, name=n, demo=d, events=join_sum(eh, el), rewardMicro=join_sum(rh, rl)
            )
            for m, n, d, eh, el, rh, rl in mrows
        ),
        key=lambda t: (-t.rewardMicro, t.modelId),
    )
    return SummaryResponse(
        rewardMicro=reward,
        events=events,
        contributions=ContributionTotalsPage(
            items=[
                ContributionTotals(
                    contributionId=c,
                    title=t,
                    events=join_sum(eh, el),
                    sharePpm=join_sum(sh, sl),
                    rewardMicro=join_sum(rh, rl),
                )
                for c, t, eh, el, sh, sl, rh, rl in crow
            ],
            nextCursor=crow[-1][0] if more and crow else None,
            hasMore=more,
        ),
        models=models,
    )


@router.get("/v1/models", response_model=ModelPage, summary="Registered models, by id")
def list_models(
    session: DbSession,
    principal: CurrentPrincipal,
    after: Annotated[str | None, Query(pattern=MODEL_ID, description="Model id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ModelPage:
    stmt = select(Model).order_by(Model.id).limit(limit + 1)
    if after is not None:
        stmt = stmt.where(Model.id > after)
    rows = list(session.scalars(stmt).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return ModelPage(
        items=[model_out(r) for r in rows],
        nextCursor=rows[-1].id if more and rows else None,
        hasMore=more,
    )
