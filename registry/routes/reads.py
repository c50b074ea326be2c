"""Contributor reads: usage time series, rewards after a cursor, summary; and the model list.

Everything a contributor reads is filtered by the caller's keys (including keys they rotated
away from), and a contribution that is not theirs answers 404 exactly like one that does not
exist, so nobody learns about other tenants' contributions. Series and summaries come from the
pre-aggregated day buckets, never from a scan of the events.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import ColumnElement, bindparam, func, literal_column, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from registry.auth import CurrentPrincipal, OwnSessionPrincipal, Principal, as_utc
from registry.db.models import Contribution
from registry.db.session import DbSession
from registry.db.usage_models import (
    KIND_CONTRIBUTOR,
    LedgerEntry,
    Model,
    UsageBucket,
    UsageEvent,
)
from registry.errors import ERROR_RESPONSES, ApiError
from registry.routes.usage import MODEL_ID, Evidence, ModelOut, SettledThrough, model_out
from registry.settlement import EventSplit, entry_events, settlement_status

router = APIRouter(tags=["usage"], responses=ERROR_RESPONSES)

DEFAULT_DAYS = 90
MAX_RANGE_DAYS = 731
CURSOR = r"^[0-9]{1,18}$"
MAX_REWARDS_PAGE = 10_000  # ledger entries per page of GET /v1/me/rewards
MAX_WINDOWS = 50  # contributions per GET /v1/me/usage-windows
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
    settledThrough: SettledThrough = Field(
        description="Every event up to this usage-log position is counted (at least)"
    )
    unsettledEvents: int = Field(
        description="Events the registry received (all operators) that are not settled yet"
    )


class UsageWindows(BaseModel):
    windows: list[UsageResponse] = Field(
        description="One per contribution asked, in the order asked; each what "
        "GET /v1/contributions/{id}/usage answers for it (one settledThrough for all)"
    )


class RewardEntry(BaseModel):
    cursor: str = Field(description="Ledger id; pass as ?after= to continue after this entry")
    eventId: str = Field(
        description="The event of a single-event entry; for an aggregated entry the name of "
        "its settlement ('s' + the last usage-log position it settled)"
    )
    contributionId: str
    modelId: str
    method: str
    amountMicro: int = Field(description="Exact sum of the entry's per-event amounts")
    at: datetime = Field(description="Time of the entry's earliest event (its day is the entry's)")
    demo: bool
    events: int = Field(description="Events the entry sums (GET /v1/me/rewards/{cursor}/events)")
    digest: str | None = Field(
        description="sha256 over the sorted (event digest, amount) lines of its events "
        "(docs/protocol.md); null for a single-event entry written before settlement"
    )


class RewardsPage(BaseModel):
    items: list[RewardEntry]
    nextCursor: str | None = Field(
        description="Give as ?after= next time; unchanged when nothing new (null if never any)"
    )
    hasMore: bool
    settledThrough: SettledThrough = Field(
        description="Every event up to this usage-log position is in the ledger (at least)"
    )
    unsettledEvents: int = Field(
        description="Events the registry received (all operators) that are not settled yet"
    )


class EntryEvent(BaseModel):
    sequence: int = Field(description="Usage-log position; pass as ?after= for the next page")
    eventId: str
    at: datetime
    feeMicro: int
    weightPpm: int = Field(description="This attribution's weight in the event, in ppm")
    amountMicro: int = Field(description="What the event paid this entry (exact split)")
    digest: str = Field(description="The event digest (docs/protocol.md)")
    modelId: str
    attributionsJson: str = Field(
        description="The event's attributions exactly as stored (JSON text: "
        "[[contributionId, weightPpm, method(, evidence)], ...]); with eventId, modelId, at "
        'and feeMicro it gives the event digest (docs/protocol.md, "Usage evidence")'
    )
    evidence: Evidence | None = Field(
        description="The evidence of this entry's attribution (its contribution and method) "
        "in the event; null if the operator gave none (always for influence: operator-asserted)"
    )


class EntryEventsPage(BaseModel):
    entry: RewardEntry
    items: list[EntryEvent] = Field(description="In usage-log order")
    nextCursor: str | None = Field(description="Give as ?after= for the next page")
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
    request: Request,
    principal: OwnSessionPrincipal,
    contribution_id: Annotated[str, Path(pattern=ID_PATTERN)],
    bucket: Literal["day", "week"] = "day",
    since: Annotated[date | None, Query(description="First day (default: 90 days ago)")] = None,
    until: Annotated[date | None, Query(description="Last day, inclusive (default: today)")] = None,
) -> Response:
    # The answer is encoded by msgspec (`UsageResponseOut`: the same JSON as `UsageResponse`,
    # which documents it), a fraction of pydantic's CPU for a window of hundreds of points.
    # A sync makes one such read per contribution: its session is its own (no request-wide
    # session dependency, whose start and end are two more worker-thread hops).
    with request.app.state.sessions() as session:
        return _usage_window(session, principal, contribution_id, bucket, since, until)


# The statements of the hot reads, built once and run on the session's connection (Core, no
# ORM execution: a fraction of the CPU of building and running them per request).
_OWNER = select(Contribution.owner_fingerprint).where(Contribution.id == bindparam("cid"))
_OWNERS = select(Contribution.id, Contribution.owner_fingerprint).where(
    Contribution.id.in_(bindparam("cids", expanding=True))
)
# a window's rows (model, method, day, events, share, reward), in [since, until]
_BUCKET = (
    UsageBucket.model_id,
    UsageBucket.method,
    UsageBucket.bucket_start,
    UsageBucket.events,
    UsageBucket.share_ppm_sum,
    UsageBucket.reward_micro,
)
_DAYS = (
    UsageBucket.bucket_start >= bindparam("since"),
    UsageBucket.bucket_start <= bindparam("until"),
)
_WINDOW = (
    select(*_BUCKET)
    .where(UsageBucket.contribution_id == bindparam("cid"), *_DAYS)
    .order_by(UsageBucket.model_id, UsageBucket.method, UsageBucket.bucket_start)
)
# the rows of several windows, each led by its contribution
_WINDOWS = (
    select(UsageBucket.contribution_id, *_BUCKET)
    .where(UsageBucket.contribution_id.in_(bindparam("cids", expanding=True)), *_DAYS)
    .order_by(
        UsageBucket.contribution_id,
        UsageBucket.model_id,
        UsageBucket.method,
        UsageBucket.bucket_start,
    )
)


def _owned(session: Session, principal: Principal, contribution_id: str) -> None:
    """`get_owned` without loading the row: 404 unless the caller's keys own it."""
    owner = session.connection().execute(_OWNER, {"cid": contribution_id}).scalar()
    if owner is None or owner not in principal.all_fingerprints:
        raise ApiError(404, "not_found", "No such contribution.")


def _window_range(bucket: str, since: date | None, until: date | None) -> tuple[date, date]:
    """The days a usage read covers (defaults: the last `DEFAULT_DAYS` days to today), or
    422."""
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
    return since, until


def _window_out(
    contribution_id: str,
    rows: list[Any],
    bucket: str,
    since: date,
    until: date,
    settled: tuple[SettledThroughOut, int],
) -> UsageResponseOut:
    """One contribution's answer from its bucket rows (model, method, day, events, share,
    reward)."""
    grouped: dict[tuple[str, str], dict[date, list[int]]] = defaultdict(dict)
    for model_id, method, day, events, share, reward in rows:
        start = _week_start(day) if bucket == "week" else day
        point = grouped[(model_id, method)].setdefault(start, [0, 0, 0])
        point[0] += events
        point[1] += share
        point[2] += reward
    series = [
        UsageSeriesOut(
            model_id,
            method,
            [UsagePointOut(start, p[0], p[1], p[2]) for start, p in sorted(points.items())],
        )
        for (model_id, method), points in sorted(grouped.items())
    ]
    return UsageResponseOut(
        contributionId=contribution_id,
        bucket=bucket,
        since=since,
        until=until,
        series=series,
        totals=UsageTotalsOut(sum(r[3] for r in rows), sum(r[5] for r in rows)),
        settledThrough=settled[0],
        unsettledEvents=settled[1],
    )


def _usage_window(
    session: Session,
    principal: Principal,
    contribution_id: str,
    bucket: str,
    since: date | None,
    until: date | None,
) -> Response:
    _owned(session, principal, contribution_id)
    since, until = _window_range(bucket, since, until)
    settled = _settled(session)
    rows = (
        session.connection()
        .execute(_WINDOW, {"cid": contribution_id, "since": since, "until": until})
        .all()
    )
    answer = _window_out(contribution_id, list(rows), bucket, since, until, settled)
    return Response(content=_ENCODER.encode(answer), media_type="application/json")


@router.get(
    "/v1/me/usage-windows",
    response_model=UsageWindows,
    summary="Usage time series of several of your contributions in one read",
)
def my_usage_windows(
    request: Request,
    principal: OwnSessionPrincipal,
    contribution: Annotated[
        list[str],
        Query(
            description=f"A contribution id (1 to {MAX_WINDOWS} of them, each once; "
            "repeat the parameter)"
        ),
    ],
    bucket: Literal["day", "week"] = "day",
    since: Annotated[date | None, Query(description="First day (default: 90 days ago)")] = None,
    until: Annotated[date | None, Query(description="Last day, inclusive (default: today)")] = None,
) -> Response:
    """What `GET /v1/contributions/{id}/usage` answers for each contribution, with the same
    days for all, in one request: a sync reads every contribution's window, and one request
    per window costs more than the window. 404 if any of them is not the caller's."""
    if not 1 <= len(contribution) <= MAX_WINDOWS:
        raise ApiError(422, "invalid_request", f"Name 1 to {MAX_WINDOWS} contributions per read.")
    if len(set(contribution)) != len(contribution):
        raise ApiError(422, "invalid_request", "A contribution is named twice.")
    if not all(_ID.fullmatch(cid) for cid in contribution):
        raise ApiError(422, "invalid_request", "A contribution id is not an id.")
    since, until = _window_range(bucket, since, until)
    with request.app.state.sessions() as session:
        run = session.connection().execute
        owners = dict(run(_OWNERS, {"cids": contribution}).all())
        if any(owners.get(cid) not in principal.all_fingerprints for cid in contribution):
            raise ApiError(404, "not_found", "No such contribution.")
        settled = _settled(session)
        rows: dict[str, list[Any]] = {cid: [] for cid in contribution}
        for cid, *row in run(_WINDOWS, {"cids": contribution, "since": since, "until": until}):
            rows[cid].append(row)
    answer = UsageWindowsOut(
        [_window_out(cid, rows[cid], bucket, since, until, settled) for cid in contribution]
    )
    return Response(content=_ENCODER.encode(answer), media_type="application/json")


_ID = re.compile(ID_PATTERN)


class UsagePointOut(msgspec.Struct):
    """`UsagePoint` for msgspec: the same field names, order and JSON."""

    start: date
    events: int
    sharePpm: int
    rewardMicro: int


class UsageSeriesOut(msgspec.Struct):
    modelId: str
    method: str
    points: list[UsagePointOut]


class UsageTotalsOut(msgspec.Struct):
    events: int
    rewardMicro: int


class UsageResponseOut(msgspec.Struct):
    """`UsageResponse` for msgspec (the OpenAPI document describes `UsageResponse`)."""

    contributionId: str
    bucket: str
    since: date
    until: date
    series: list[UsageSeriesOut]
    totals: UsageTotalsOut
    settledThrough: SettledThroughOut
    unsettledEvents: int


class UsageWindowsOut(msgspec.Struct):
    """`UsageWindows` for msgspec."""

    windows: list[UsageResponseOut]


@router.get(
    "/v1/me/rewards",
    response_model=RewardsPage,
    summary="Ledger entries of your contributions after a cursor (incremental sync)",
)
def my_rewards(
    request: Request,
    principal: OwnSessionPrincipal,
    after: Annotated[str | None, Query(pattern=CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_REWARDS_PAGE)] = 500,
) -> Response:
    """Cursors are ledger ids, which become visible in increasing order, so a client that
    stores `nextCursor` and asks again later sees every entry exactly once.

    The page is encoded by msgspec (`RewardsPageOut`: the same JSON as `RewardsPage`, which
    documents it), a fraction of pydantic's CPU per entry on pages of thousands."""
    with request.app.state.sessions() as session:
        return _rewards_page(session, principal, after, limit)


def _rewards_page(
    session: Session, principal: Principal, after: str | None, limit: int
) -> Response:
    start = int(after) if after is not None else 0
    settled = _settled(session)
    rows = (
        session.connection()
        .execute(
            _PAGE,
            {"owners": list(principal.all_fingerprints), "start": start, "rows": limit + 1},
        )
        .all()
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    items = _entry_structs(rows)
    next_cursor = items[-1].cursor if items else after
    page = RewardsPageOut(
        items=items,
        nextCursor=next_cursor,
        hasMore=has_more,
        settledThrough=settled[0],
        unsettledEvents=settled[1],
    )
    return Response(content=_ENCODER.encode(page), media_type="application/json")


class RewardEntryOut(msgspec.Struct):
    """`RewardEntry` for msgspec: the same field names, order and JSON."""

    cursor: str
    eventId: str
    contributionId: str
    modelId: str
    method: str
    amountMicro: int
    at: datetime
    demo: bool
    events: int
    digest: str | None


class SettledThroughOut(msgspec.Struct):
    sequence: int
    at: datetime | None


class RewardsPageOut(msgspec.Struct):
    """`RewardsPage` for msgspec (the OpenAPI document describes `RewardsPage`)."""

    items: list[RewardEntryOut]
    nextCursor: str | None
    hasMore: bool
    settledThrough: SettledThroughOut
    unsettledEvents: int


_ENCODER = msgspec.json.Encoder()


def _entry_structs(rows: Any) -> list[RewardEntryOut]:
    """The page's entries (rows of `_ENTRY_COLUMNS`), unpacked by position: a third of the CPU
    of reading each row's columns by name on pages of 10,000."""
    out: list[RewardEntryOut] = []
    add = out.append
    for id_, event_id, cid, model_id, method, amount, at, demo, events, digest in rows:
        add(
            RewardEntryOut(
                str(id_),
                event_id or "",
                cid or "",
                model_id,
                method or "",
                amount,
                at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC),
                bool(demo),
                1 if events is None else int(events),
                digest,
            )
        )
    return out


_ENTRY_COLUMNS = (
    LedgerEntry.id,
    LedgerEntry.event_id,
    LedgerEntry.contribution_id,
    LedgerEntry.model_id,
    LedgerEntry.method,
    LedgerEntry.amount_micro,
    LedgerEntry.at,
    LedgerEntry.demo,
    LedgerEntry.events,
    LedgerEntry.digest,
)


_PAGE = (
    select(*_ENTRY_COLUMNS)
    .where(
        LedgerEntry.owner_fingerprint.in_(bindparam("owners", expanding=True)),
        LedgerEntry.kind == KIND_CONTRIBUTOR,
        LedgerEntry.id > bindparam("start"),
    )
    .order_by(LedgerEntry.id)
    .limit(bindparam("rows"))
)


def _entry_out(r: Any) -> RewardEntry:
    return RewardEntry(
        cursor=str(r.id),
        eventId=r.event_id or "",
        contributionId=r.contribution_id or "",
        modelId=r.model_id,
        method=r.method or "",
        amountMicro=r.amount_micro,
        at=as_utc(r.at),
        demo=r.demo,
        events=1 if r.events is None else int(r.events),
        digest=r.digest,
    )


def _settled(session: Any) -> tuple[SettledThroughOut, int]:
    """Read before the data it describes, so the data holds at least what it claims."""
    status = settlement_status(session)
    at = None if status.settled_at is None else as_utc(status.settled_at)
    return SettledThroughOut(status.settled_seq, at), status.unsettled


def _evidence(attributions: str, entry: LedgerEntry) -> Evidence | None:
    """The evidence of the entry's attribution in one event's stored attributions (None if
    there is none, or if what is stored is not evidence: attributionsJson shows it as it is,
    and its digest tells the client it changed)."""
    for cid, _, method, *rest in json.loads(attributions):
        if cid == entry.contribution_id and method == entry.method:
            try:
                return Evidence.model_validate(rest[0]) if rest else None
            except ValidationError:
                return None
    return None


@router.get(
    "/v1/me/rewards/{entry_id}/events",
    response_model=EntryEventsPage,
    summary="The events one of your ledger entries sums, with their exact amounts (paged)",
)
def my_entry_events(
    session: DbSession,
    principal: CurrentPrincipal,
    entry_id: Annotated[str, Path(pattern=CURSOR, description="The entry's cursor")],
    after: Annotated[
        str | None, Query(pattern=CURSOR, description="Usage-log position (sequence)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> EntryEventsPage:
    """Recomputed from the usage log with the split the settler made; the amounts add up to
    the entry's, and their (digest, amount) pairs give the entry's digest. An entry that is not
    the caller's answers 404 like one that does not exist."""
    entry = session.get(LedgerEntry, int(entry_id))
    if (
        entry is None
        or entry.kind != KIND_CONTRIBUTOR
        or entry.owner_fingerprint not in principal.all_fingerprints
    ):
        raise ApiError(404, "not_found", "No such ledger entry of yours.")
    out = _entry_out(entry)
    if entry.seq_from is None:  # one event, written before settlement existed
        ev = session.get(UsageEvent, entry.event_id)
        splits = (
            []
            if ev is None
            else [
                EventSplit(
                    seq=int(ev.seq or 0),
                    event_id=ev.event_id,
                    at=as_utc(ev.at),
                    fee_micro=ev.fee_micro,
                    weight_ppm=next(
                        (w for c, w, m in ev.attribution_list()
                         if c == entry.contribution_id and m == entry.method),
                        0,
                    ),
                    amount_micro=entry.amount_micro,
                    digest="",
                    attributions=ev.attributions,
                )
            ]
        )  # fmt: skip
    else:  # one indexed read of this page's events (and one more to know if there are more)
        splits = entry_events(
            session, entry, after=int(after) if after is not None else None, limit=limit + 1
        )
    start = int(after) if after is not None else -1
    page = [x for x in splits if x.seq > start][: limit + 1]
    more = len(page) > limit
    page = page[:limit]
    return EntryEventsPage(
        entry=out,
        items=[
            EntryEvent(
                sequence=x.seq,
                eventId=x.event_id,
                at=x.at,
                feeMicro=x.fee_micro,
                weightPpm=x.weight_ppm,
                amountMicro=x.amount_micro,
                digest=x.digest,
                modelId=entry.model_id,
                attributionsJson=x.attributions,
                evidence=_evidence(x.attributions, entry),
            )
            for x in page
        ],
        nextCursor=str(page[-1].seq) if more and page else None,
        hasMore=more,
    )


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
