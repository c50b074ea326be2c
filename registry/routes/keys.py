"""POST /v1/keys/rotate: accept a key rotation statement and link the keys (placeholder)."""

from __future__ import annotations

from fastapi import APIRouter

from registry.errors import ERROR_RESPONSES

router = APIRouter(tags=["keys"], responses=ERROR_RESPONSES)
