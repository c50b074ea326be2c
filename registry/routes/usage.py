"""Placeholder: registry-usage replaces this module with POST /v1/usage."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
