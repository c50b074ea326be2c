"""Datanet rules and their evaluation against a contribution (at create and at finalize).

Rules are stored as JSON on the datanet row; empty lists mean "anything". The app evaluates the
same rules locally before signing so users learn about rejections before uploading.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

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


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def evaluate_rules(
    rules_json: dict[str, Any],
    *,
    kind: str,
    license: str | None,
    files: Sequence[tuple[str, int]],
) -> list[Reason]:
    """Every rule the contribution breaks, as reasons (empty list = acceptable)."""
    rules = DatanetRules.model_validate(rules_json)
    reasons: list[Reason] = []
    if rules.kinds and kind not in rules.kinds:
        reasons.append(
            Reason(code="kind_not_accepted", message=f"This datanet does not accept {kind!r}.")
        )
    if rules.licenses and (license or "") not in rules.licenses:
        reasons.append(
            Reason(
                code="license_not_accepted",
                message=f"License {license!r} is not one of {', '.join(rules.licenses)}.",
            )
        )
    if rules.maxFiles is not None and len(files) > rules.maxFiles:
        reasons.append(Reason(code="too_many_files", message=f"More than {rules.maxFiles} files."))
    total = sum(size for _, size in files)
    if rules.maxTotalSize is not None and total > rules.maxTotalSize:
        reasons.append(
            Reason(
                code="too_large",
                message=f"Total size {total} bytes exceeds {rules.maxTotalSize} bytes.",
            )
        )
    if rules.formats:
        allowed = {f.lower().lstrip(".") for f in rules.formats}
        for path, _ in files:
            if _extension(path) not in allowed:
                reasons.append(
                    Reason(
                        code="format_not_accepted",
                        message="This file type is not accepted by the datanet.",
                        path=path,
                    )
                )
    return reasons
