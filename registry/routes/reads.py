"""Placeholder: registry-usage replaces this module with the usage/rewards/summary reads."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
