"""Datanet rules and their evaluation against a contribution (at create and at finalize).

Rules are stored as JSON on the datanet row; empty lists mean "anything". The evaluation itself
lives in app.domain.datanet_rules: the app runs the same code before signing, so users learn
about rejections before uploading.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.domain import datanet_rules as domain_rules
from registry.auth import as_utc
from registry.db.models import Datanet


class DatanetRules(BaseModel):
    kinds: list[str] = Field(default_factory=lambda: ["dataset", "annotation"])
    formats: list[str] = Field(
        default_factory=list, description="Accepted file extensions (lowercase, no dot); [] = any"
    )
    licenses: list[str] = Field(
        default_factory=list, description="Accepted SPDX license ids; [] = any"
    )
    maxTotalSize: int | None = Field(default=None, description="Bytes; null = unlimited")
    maxFiles: int | None = None
    review: bool = Field(default=False, description="The datanet owner reviews submissions")


class DatanetOut(BaseModel):
    id: str
    name: str
    description: str
    rules: DatanetRules
    createdAt: datetime


class DatanetPage(BaseModel):
    items: list[DatanetOut]


class Reason(BaseModel):
    """A machine-readable rejection reason."""

    code: str
    message: str
    path: str | None = None


def datanet_out(row: Datanet) -> DatanetOut:
    return DatanetOut(
        id=row.id,
        name=row.name,
        description=row.description,
        rules=DatanetRules.model_validate(row.rules),
        createdAt=as_utc(row.created_at),
    )


def evaluate_rules(
    rules_json: dict[str, Any],
    *,
    kind: str,
    license: str | None,
    files: Sequence[tuple[str, int]],
) -> list[Reason]:
    """Every rule the contribution breaks, as reasons (empty list = acceptable); the same
    evaluation the app runs before signing (app.domain.datanet_rules)."""
    rules = domain_rules.DatanetRules.from_json(rules_json)
    return [
        Reason(code=p.code, message=p.message, path=p.path)
        for p in domain_rules.evaluate(rules, kind=kind, license=license, files=files)
    ]
