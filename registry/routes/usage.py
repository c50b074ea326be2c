"""Model operators: register models and post usage batches (POST /v1/models, POST /v1/usage).

Usage bodies are validated per event, not per batch: an operator's pipeline must not stall
because one event of a thousand names an unknown contribution, so only a structurally broken
body is refused as a whole (422); everything else is answered event by event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from registry.auth import Principal, as_utc, require_role
from registry.db.models import ROLE_OPERATOR
from registry.db.session import DbSession
from registry.db.usage_models import Model
from registry.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from registry.ledger import IngestResult, ingest_with_retry
from registry.settings import RegistrySettings

router = APIRouter(tags=["usage"], responses=ERROR_RESPONSES)

Operator = Annotated[Principal, Depends(require_role(ROLE_OPERATOR))]
MODEL_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"
DEMO_PREFIX = "demo-"
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "Needs the operator role"}
}


class AttributionBody(BaseModel):
    # snake_case attributes with the wire's camelCase as aliases: registry.ledger reads these
    # models as they are (ledger.AttributionLike / EventLike), without a copy per event.
    contribution_id: str = Field(alias="contributionId")
    weight: float = Field(
        description="Relative weight within the event (0 to 1e6, kept to 6 decimals)"
    )
    method: str = Field(description="influence | exact-match | retrieval")


class UsageEventBody(BaseModel):
    event_id: str = Field(
        alias="eventId", description="Operator-chosen idempotency key (1-128 characters)"
    )
    model_id: str = Field(alias="modelId")
    at: datetime = Field(description="When the inference happened (RFC 3339 with offset)")
    fee_micro: int = Field(alias="feeMicro", description="Fee of the event in micro-units (>= 0)")
    attributions: list[AttributionBody]


class UsageBatch(BaseModel):
    events: list[UsageEventBody]


class ReasonOut(BaseModel):
    code: str
    message: str
    path: str | None = None


class RejectedEvent(BaseModel):
    eventId: str
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


def batch_result(result: IngestResult) -> UsageBatchResult:
    return UsageBatchResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[
            RejectedEvent(
                eventId=r.event_id,
                reasons=[ReasonOut(code=x.code, message=x.message, path=x.path) for x in r.reasons],
            )
            for r in result.rejected
        ],
    )


@router.post(
    "/v1/usage",
    response_model=UsageBatchResult,
    responses=_FORBIDDEN,
    summary="Post a batch of usage events (operators)",
)
def post_usage(
    body: UsageBatch, request: Request, session: DbSession, operator: Operator
) -> UsageBatchResult:
    """Ingest events idempotently: accepted, duplicates (already stored, unchanged) and
    rejected-with-reasons are listed separately; accepted ones are in the ledger on return."""
    settings = _settings(request)
    if len(body.events) > settings.usage_batch_max:
        raise ApiError(
            413,
            "batch_too_large",
            f"Send at most {settings.usage_batch_max} events per batch.",
            {"max": settings.usage_batch_max, "received": len(body.events)},
        )
    result = ingest_with_retry(
        session,
        operator=operator.fingerprint,
        events=body.events,
        share_ppm=settings.contributor_share_ppm,
    )
    return batch_result(result)


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
