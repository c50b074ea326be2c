"""Model operators: register models and post usage batches (POST /v1/models, POST /v1/usage).

Usage bodies are validated per event, not per batch: an operator's pipeline must not stall
because one event of a thousand names an unknown contribution, so only a structurally broken
body is refused as a whole (422); everything else is answered event by event. "Structurally"
is strict: JSON strings for text, JSON integers for integers, numbers for numbers (no "100",
no true, no 1.0 for an integer), RFC 3339 text for times.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    WithJsonSchema,
)
from sqlalchemy.orm import Session

from registry.auth import CurrentPrincipal, Principal, as_utc, require_role
from registry.db.models import ROLE_OPERATOR
from registry.db.session import DbSession
from registry.db.usage_models import Model
from registry.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from registry.ledger import IngestResult, ingest_with_retry
from registry.settings import RegistrySettings
from registry.settlement import Settler, settlement_status
from registry.usage_rules import MAX_EVIDENCE_LENGTH, MAX_EXCERPT_CHARS

router = APIRouter(tags=["usage"], responses=ERROR_RESPONSES)

Operator = Annotated[Principal, Depends(require_role(ROLE_OPERATOR))]
MODEL_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"
DEMO_PREFIX = "demo-"
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "Needs the operator role"}
}


_RFC3339_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _rfc3339_text(value: object) -> object:
    """Only text that starts like an RFC 3339 date-time (pydantic alone would also take Unix
    timestamps, numeric strings and bare dates)."""
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError("must be an RFC 3339 date-time text, e.g. 2026-11-26T07:59:58Z")
    return value


EventTime = Annotated[datetime, BeforeValidator(_rfc3339_text)]


class Evidence(BaseModel):
    """What an attribution points at in the contribution's files (docs/protocol.md, "Usage
    evidence"): checkable by the contributor against their own copy. As read back; fields the
    operator did not give are null."""

    fileSha256: str = Field(
        pattern="^[0-9a-f]{64}$", description="SHA-256 of one file of the contribution's manifest"
    )
    offset: int | None = Field(
        default=None, ge=0, description="Byte offset of the span in that file"
    )
    length: int | None = Field(
        default=None, ge=1, le=MAX_EVIDENCE_LENGTH, description="Bytes in the span"
    )
    spanSha256: str | None = Field(
        default=None, pattern="^[0-9a-f]{64}$", description="SHA-256 of the span's bytes"
    )
    excerpt: str | None = Field(
        default=None,
        max_length=MAX_EXCERPT_CHARS,
        description="exact-match only: a short excerpt of the model output",
    )


def _hex64(what: str) -> dict[str, Any]:
    return {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": what}


# Evidence is judged per event (reason `invalid_evidence`), so the body takes any JSON there;
# the schema documents the object an operator should send.
_EVIDENCE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "description": "exact-match: fileSha256, offset, length and spanSha256, optionally "
            "excerpt; retrieval: fileSha256, optionally offset, length and spanSha256 (all "
            "three or none); influence: no evidence (operator-asserted)",
            "properties": {
                "fileSha256": _hex64("SHA-256 of one file of the contribution's manifest"),
                "offset": {"type": "integer", "minimum": 0, "description": "Byte offset"},
                "length": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_EVIDENCE_LENGTH,
                    "description": "Bytes in the span (offset + length <= the file's size)",
                },
                "spanSha256": _hex64("SHA-256 of the span's bytes"),
                "excerpt": {
                    "type": "string",
                    "maxLength": MAX_EXCERPT_CHARS,
                    "description": "exact-match only: a short excerpt of the model output",
                },
            },
            "required": ["fileSha256"],
            "additionalProperties": False,
        },
        {"type": "null"},
    ]
}


class AttributionBody(BaseModel):
    # snake_case attributes with the wire's camelCase as aliases: registry.ledger reads these
    # models as they are (ledger.AttributionLike / EventLike), without a copy per event.
    contribution_id: StrictStr = Field(alias="contributionId")
    # Integers stay integers (exact ppm, and 10**400 is "too large", not a type error).
    weight: StrictInt | StrictFloat = Field(
        description="Relative weight within the event (0 to 1e6, kept to 6 decimals)"
    )
    method: StrictStr = Field(description="influence | exact-match | retrieval")
    evidence: Annotated[Any, WithJsonSchema(_EVIDENCE_SCHEMA)] = None


class UsageEventBody(BaseModel):
    event_id: StrictStr = Field(
        alias="eventId", description="Operator-chosen idempotency key (1-128 characters)"
    )
    model_id: StrictStr = Field(alias="modelId")
    at: EventTime = Field(description="When the inference happened (RFC 3339 with offset)")
    fee_micro: StrictInt = Field(
        alias="feeMicro", description="Fee of the event in micro-units (0 to 10^15)"
    )
    attributions: list[AttributionBody]


class UsageBatch(BaseModel):
    events: list[UsageEventBody]


# The same body decoded by msgspec (compiled; a fraction of pydantic's CPU per event). Every
# type is as strict as the pydantic models' or stricter (msgspec also refuses NaN, lone
# surrogates, a BOM, numbers out of float range), so what it accepts, pydantic accepts with the
# same values; `decode_usage` answers None for anything else and pydantic then judges the body
# as before, with its own 422. The pydantic models stay the documented schema.
class DecodedAttribution(msgspec.Struct):
    contribution_id: str = msgspec.field(name="contributionId")
    weight: int | float
    method: str
    evidence: Any = None


class DecodedEvent(msgspec.Struct):
    event_id: str = msgspec.field(name="eventId")
    model_id: str = msgspec.field(name="modelId")
    # The JSON value as sent; `decode_usage` replaces it with the datetime pydantic would make.
    at: Any
    fee_micro: int = msgspec.field(name="feeMicro")
    attributions: list[DecodedAttribution]


class DecodedBatch(msgspec.Struct):
    events: list[DecodedEvent]


_BATCH_DECODER = msgspec.json.Decoder(DecodedBatch)
_EVENT_TIME: TypeAdapter[datetime] = TypeAdapter(EventTime)


def decode_usage(raw: bytes) -> list[DecodedEvent] | None:
    """The events of a `POST /v1/usage` body, if msgspec decodes it as a UsageBatch and every
    `at` is a time pydantic accepts (parsed by pydantic, so the same datetime); else None."""
    try:
        events = _BATCH_DECODER.decode(raw).events
        for event in events:
            if type(event.at) is not str:
                return None
            event.at = _EVENT_TIME.validate_python(event.at)
    except (msgspec.MsgspecError, ValueError):  # pydantic's ValidationError is a ValueError
        return None
    return events


class ReasonOut(BaseModel):
    code: str
    message: str
    path: str | None = None


class RejectedEvent(BaseModel):
    eventId: str = Field(
        description="As sent; text that cannot be encoded as UTF-8 (lone surrogates) is "
        "echoed with those characters as \\uXXXX escapes"
    )
    index: int = Field(description="Position of the event in the batch (from 0)")
    reasons: list[ReasonOut]


class UsageBatchResult(BaseModel):
    accepted: list[str]
    duplicates: list[str]
    rejected: list[RejectedEvent]


class ModelIn(BaseModel):
    id: str = Field(pattern=MODEL_ID, description="Stable id used in usage events")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class ModelOut(BaseModel):
    id: str
    name: str
    description: str
    operator: str = Field(description="Fingerprint of the operator's key")
    demo: bool = Field(description="Simulated demo model (seed-demo); ids start with 'demo-'")
    createdAt: datetime


def model_out(row: Model) -> ModelOut:
    return ModelOut(
        id=row.id,
        name=row.name,
        description=row.description,
        operator=row.operator_fingerprint,
        demo=row.demo,
        createdAt=as_utc(row.created_at),
    )


def _settings(request: Request) -> RegistrySettings:
    settings: RegistrySettings = request.app.state.settings
    return settings


def echoable(text: str) -> str:
    """`text` if it can be sent as UTF-8, else with its unencodable characters (lone
    surrogates) as backslash escapes, so an answer naming it can always be sent."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def batch_result(result: IngestResult) -> UsageBatchResult:
    """The answer; accepted and duplicate ids were stored or looked up, so they are valid text,
    and rejected ids are made echoable."""
    return UsageBatchResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[
            RejectedEvent(
                eventId=echoable(r.event_id),
                index=r.index,
                reasons=[
                    ReasonOut(code=x.code, message=echoable(x.message), path=x.path)
                    for x in r.reasons
                ],
            )
            for r in result.rejected
        ],
    )


def _render(result: IngestResult) -> JSONResponse:
    """The answer as bytes, built before the batch commits: encoding can no longer fail after."""
    return JSONResponse(batch_result(result).model_dump(mode="json"))


def post_usage(
    body: UsageBatch, request: Request, session: DbSession, operator: Operator
) -> JSONResponse:
    """Ingest events idempotently: accepted, duplicates (already stored, unchanged) and
    rejected-with-reasons are listed separately. Accepted events are durably in the usage log
    on return; their rewards appear once they are settled (GET /v1/usage/settlement)."""
    return _ingest(body.events, request, session, operator)


_DECODED = "registry.usage_events"  # request scope key of the events decode_usage made


def _post_decoded(request: Request, session: DbSession, operator: Operator) -> JSONResponse:
    """`post_usage` for a body `UsageRoute` already decoded."""
    return _ingest(request.scope[_DECODED], request, session, operator)


def _ingest(
    events: Sequence[UsageEventBody] | Sequence[DecodedEvent],
    request: Request,
    session: Session,
    operator: Principal,
) -> JSONResponse:
    settings = _settings(request)
    if len(events) > settings.usage_batch_max:
        raise ApiError(
            413,
            "batch_too_large",
            f"Send at most {settings.usage_batch_max} events per batch.",
            {"max": settings.usage_batch_max, "received": len(events)},
        )
    result, answer = ingest_with_retry(
        session,
        operator=operator.fingerprint,
        operator_keys=operator.previous_fingerprints,
        events=events,
        share_ppm=settings.contributor_share_ppm,
        render=_render,
    )
    assert answer is not None
    settler: Settler | None = getattr(request.app.state, "settler", None)
    if settler is not None and result.accepted:
        settler.wake()
    return answer


class UsageRoute(APIRoute):
    """`POST /v1/usage` as declared (the pydantic body is its schema and judges any body
    msgspec refuses), with a fast path: a JSON body that `decode_usage` accepts goes to the
    same endpoint code without pydantic (`_post_decoded`, the same dependencies)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()
        decoded = APIRoute(
            self.path,
            _post_decoded,
            methods=["POST"],
            dependencies=self.dependencies,
            dependency_overrides_provider=self.dependency_overrides_provider,
        ).get_route_handler()

        async def handler(request: Request) -> Response:
            ctype = request.headers.get("content-type", "")
            if ctype.split(";", 1)[0].strip().lower() == "application/json":
                events = decode_usage(await request.body())
                if events is not None:
                    request.scope[_DECODED] = events
                    return await decoded(request)
            return await declared(request)

        return handler


router.add_api_route(
    "/v1/usage",
    post_usage,
    methods=["POST"],
    response_model=UsageBatchResult,
    responses=_FORBIDDEN,
    summary="Post a batch of usage events (operators)",
    route_class_override=UsageRoute,
)


class SettledThrough(BaseModel):
    sequence: int = Field(description="Usage-log position up to which events are settled")
    at: datetime | None = Field(description="When that settlement committed (null: never)")


class SettlementOut(BaseModel):
    settledThrough: SettledThrough
    receivedThrough: int = Field(description="Highest usage-log position received")
    unsettledEvents: int = Field(description="Events received but not yet settled")


def settlement_out(session: Session) -> SettlementOut:
    status = settlement_status(session)
    return SettlementOut(
        settledThrough=SettledThrough(sequence=status.settled_seq, at=status.settled_at),
        receivedThrough=status.received_seq,
        unsettledEvents=status.unsettled,
    )


@router.get(
    "/v1/usage/settlement",
    response_model=SettlementOut,
    summary="How far settlement has gone (optionally wait until it caught up)",
)
def get_settlement(
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=60,
            description="Seconds to wait until everything received before this request is "
            "settled (0: answer at once)",
        ),
    ] = 0,
) -> SettlementOut:
    """Global counts only (no tenant data). With `wait`, an in-process settler settles now;
    otherwise (the settler runs in another process) the registry polls until the events
    received before the request are settled or the time is up."""
    if wait > 0:
        target = settlement_status(session).received_seq
        session.rollback()
        settler: Settler | None = getattr(request.app.state, "settler", None)
        deadline = time.monotonic() + wait
        if settler is not None:
            settler.settle_pending()
        while time.monotonic() < deadline:
            if settlement_status(session).settled_seq >= target:
                break
            session.rollback()
            time.sleep(0.05)
        session.rollback()
    return settlement_out(session)


@router.post(
    "/v1/models",
    response_model=ModelOut,
    status_code=201,
    responses={
        200: {"model": ModelOut, "description": "Already registered; updated"},
        **_FORBIDDEN,
    },
    summary="Register (or update) one of your models (operators)",
)
def register_model(
    body: ModelIn, response: Response, session: DbSession, operator: Operator
) -> ModelOut:
    """Idempotent: re-registering your own model id updates its name and description (200)."""
    if body.id.startswith(DEMO_PREFIX):
        raise ApiError(
            422, "reserved_id", f"Model ids starting with {DEMO_PREFIX!r} are kept for demo data."
        )
    row = session.get(Model, body.id)
    if row is not None:
        if row.operator_fingerprint != operator.fingerprint:
            raise ApiError(409, "conflict", f"Model id {body.id!r} belongs to another operator.")
        row.name = body.name
        row.description = body.description
        session.commit()
        response.status_code = 200
        return model_out(row)
    row = Model(
        id=body.id,
        name=body.name,
        description=body.description,
        operator_fingerprint=operator.fingerprint,
        demo=False,
    )
    session.add(row)
    session.commit()
    return model_out(row)
