"""Format detection: one detector per format; `detect(path)` reports every part it recognises.

Public API (stable for services/ and ui/):
    detect(path: Path, *, files: Sequence[str] | None = None,
           cancel: Callable[[], bool] | None = None) -> DetectionReport
    FORMATS: every format name a FormatReport can carry.

For annotation formats (coco, yolo-*, voc, label-studio) `record_count` counts labelled
objects (boxes, regions, choices); images and files are in `details`.
"""

from app.formats.base import DetectionReport, FormatReport
from app.formats.detection import FORMATS, detect

__all__ = ["FORMATS", "DetectionReport", "FormatReport", "detect"]
