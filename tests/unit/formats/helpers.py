"""Assertion helpers shared by the format-detection tests."""

from __future__ import annotations

from typing import Any


def by_format(report: Any, fmt: str) -> Any:
    """The single part of `fmt` in a DetectionReport (fails if not exactly one)."""
    parts = [p for p in report.parts if p.format == fmt]
    assert len(parts) == 1, [(p.format, p.path) for p in report.parts]
    return parts[0]


def messages(problems: Any) -> str:
    return "\n".join(f"{p.severity}: {p.message}" for p in problems)
