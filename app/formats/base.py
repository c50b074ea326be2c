"""Shared shapes for format detectors. Each detector reports; none raises on bad user data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain.problems import Problem


@dataclass(slots=True)
class FormatReport:
    """What one detector found in one part of a contribution."""

    format: str  # e.g. "csv", "coco", "yolo-ultralytics", "hf-save-to-disk", "images"
    path: str  # relative POSIX path of the part ("." for the whole root)
    record_count: int | None = None  # rows / images / annotations, whatever the format counts
    schema: dict[str, str] = field(default_factory=dict)  # column → type, when tabular
    classes: list[str] = field(default_factory=list)  # label names, when annotations
    details: dict[str, Any] = field(default_factory=dict)  # format-specific extra facts
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": self.path,
            "recordCount": self.record_count,
            "schema": dict(self.schema),
            "classes": list(self.classes),
            "details": dict(self.details),
            "problems": [p.to_dict() for p in self.problems],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FormatReport:
        return cls(
            format=d["format"],
            path=d["path"],
            record_count=d.get("recordCount"),
            schema=dict(d.get("schema", {})),
            classes=list(d.get("classes", [])),
            details=dict(d.get("details", {})),
            problems=[Problem.from_dict(p) for p in d.get("problems", [])],
        )


@dataclass(slots=True)
class DetectionReport:
    """Everything recognised under one added path. Mixed folders have several parts."""

    parts: list[FormatReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # problems not tied to one part

    @property
    def primary_format(self) -> str:
        """The format shown in the catalogue: the single part's, 'mixed', or 'unknown'."""
        names = {p.format for p in self.parts}
        if not names:
            return "unknown"
        if len(names) == 1:
            return next(iter(names))
        return "mixed"

    @property
    def record_count(self) -> int | None:
        counts = [p.record_count for p in self.parts if p.record_count is not None]
        return sum(counts) if counts else None

    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        for part in self.parts:
            out.extend(part.problems)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "primaryFormat": self.primary_format,
            "recordCount": self.record_count,
            "parts": [p.to_dict() for p in self.parts],
            "problems": [p.to_dict() for p in self.problems],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectionReport:
        return cls(
            parts=[FormatReport.from_dict(p) for p in d.get("parts", [])],
            problems=[Problem.from_dict(p) for p in d.get("problems", [])],
        )
