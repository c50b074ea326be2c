"""GET /v1/health: liveness plus a database round trip, for probes and the app's --demo.

It also names the registry's identity (`registryId`, made once per database): clients key
what they keep of this registry to it, not to the URL they reached it at; and the name of its
reward unit (`unit`), which clients show next to amounts; and its transparency log's origin and
verifier key (`logOrigin`, `logKey`; see registry.translog), which clients pin; and the
optional reads it serves (`reads`), which clients use when named.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text

from app import __version__
from registry import translog
from registry.db.session import DbSession

router = APIRouter(tags=["health"])
REWARD_UNIT = "credits"  # what one unit of money is called; amounts are its micro-units
READS = ("usage-windows",)  # the optional reads served (Health.reads)


class Health(BaseModel):
    status: str
    version: str
    database: str
    registry_id: str = Field(
        alias="registryId",
        description="This registry's identity: random, made once per database, never changes",
    )
    unit: str = Field(description="Name of the reward unit; amounts are micro-units of it")
    log_origin: str = Field(
        alias="logOrigin", description="Origin of the transparency log served under /v1/log/"
    )
    log_key: str = Field(
        alias="logKey",
        description="The log's verifier key (C2SP signed-note format name+hash+key)",
    )
    reads: list[str] = Field(
        description="Optional reads this registry serves beyond the core protocol "
        "(docs/protocol.md): 'usage-windows' is GET /v1/me/usage-windows"
    )


@router.get("/v1/health", response_model=Health)
def health(session: DbSession) -> Health:
    registry_id = session.execute(
        text("SELECT value FROM registry_meta WHERE key = 'registry_id'")
    ).scalar_one()
    dialect = session.get_bind().dialect.name
    origin, vkey = translog.identity(session)
    return Health(
        status="ok",
        version=__version__,
        database=dialect,
        registryId=registry_id,
        unit=REWARD_UNIT,
        logOrigin=origin,
        logKey=vkey,
        reads=list(READS),
    )
