"""Contributions: create from envelope + manifest + metadata, finalize, list, get (stub)."""

from __future__ import annotations

from fastapi import APIRouter

from registry.errors import ERROR_RESPONSES

router = APIRouter(tags=["contributions"], responses=ERROR_RESPONSES)
