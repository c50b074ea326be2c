"""GET /v1/health: liveness plus a database round trip, for probes and the app's --demo."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from app import __version__
from registry.db.session import DbSession

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/v1/health", response_model=Health)
def health(session: DbSession) -> Health:
    session.execute(text("SELECT 1"))
    dialect = session.get_bind().dialect.name
    return Health(status="ok", version=__version__, database=dialect)
