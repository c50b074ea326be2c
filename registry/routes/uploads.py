"""tus 1.0.0 uploads at /v1/uploads/ (stub)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["uploads"])
