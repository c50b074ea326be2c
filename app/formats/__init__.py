"""Format detection: one detector per format; `detect(path)` reports every part it recognises.

Public API (stable for services/ and ui/):
    detect(path: Path, *, cancel: Callable[[], bool] | None = None) -> DetectionReport
"""

from app.formats.base import DetectionReport, FormatReport

__all__ = ["DetectionReport", "FormatReport"]
