"""GET /v1/datanets[/{id}]: the collections contributions go to, with their rules (public)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select

from registry.datanets import DatanetOut, DatanetPage, datanet_out
from registry.db.models import Datanet
from registry.db.session import DbSession
from registry.errors import ERROR_RESPONSES, ApiError

router = APIRouter(tags=["datanets"], responses=ERROR_RESPONSES)


@router.get("/v1/datanets", response_model=DatanetPage)
def list_datanets(session: DbSession) -> DatanetPage:
    rows = session.scalars(select(Datanet).order_by(Datanet.id)).all()
    return DatanetPage(items=[datanet_out(r) for r in rows])


@router.get("/v1/datanets/{datanet_id}", response_model=DatanetOut)
def get_datanet(session: DbSession, datanet_id: Annotated[str, Path(max_length=64)]) -> DatanetOut:
    row = session.get(Datanet, datanet_id)
    if row is None:
        raise ApiError(404, "not_found", f"No datanet {datanet_id!r}.")
    return datanet_out(row)
