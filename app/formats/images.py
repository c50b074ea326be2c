"""Image files: counted and checked cheaply, without decoding pixels.

Pillow's `verify()` checks PNG chunk CRCs but does almost nothing for JPEG, so a JPEG is
also checked for its end-of-image marker: the usual damage (an interrupted copy or
download) cuts the file short and loses that marker.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport
from app.formats.files import (
    FileEntry,
    ScanContext,
    empty_file_problem,
    open_binary,
    part_path,
    problem_for_os_error,
)

_JPEG_EOI = b"\xff\xd9"
_TAIL_BYTES = 4096  # some writers pad after the end marker
MAX_LISTED = 10


@dataclass(slots=True)
class ImageCheck:
    """Summary of checking a set of images, mergeable into any annotation report."""

    count: int = 0
    extensions: Counter[str] = field(default_factory=Counter)
    bad: int = 0
    problems: list[Problem] = field(default_factory=list)


def check_image(entry: FileEntry) -> Problem | None:
    """None if the image looks whole, else a problem saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    if entry.size == 0:
        return empty_file_problem(entry.rel)
    try:
        with open_binary(entry.path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                fmt = img.format
                img.verify()
            if fmt == "JPEG":
                fh.seek(max(0, entry.size - _TAIL_BYTES))
                if _JPEG_EOI not in fh.read():
                    return Problem(
                        Severity.ERROR,
                        f"'{entry.rel}' is a truncated JPEG (its end marker is missing).",
                        entry.rel,
                    )
    except (PermissionError, FileNotFoundError) as exc:
        return problem_for_os_error(exc, entry.rel)
    except UnidentifiedImageError:
        return Problem(
            Severity.ERROR, f"'{entry.rel}' is not an image Pillow can recognise.", entry.rel
        )
    except Image.DecompressionBombError:
        return Problem(
            Severity.WARNING,
            f"'{entry.rel}' is extremely large in pixels; it was not checked.",
            entry.rel,
        )
    except Exception as exc:  # Pillow raises many types (SyntaxError, struct.error...)
        return Problem(
            Severity.ERROR, f"'{entry.rel}' is a corrupt or truncated image: {exc}", entry.rel
        )
    return None


def check_images(entries: Sequence[FileEntry], ctx: ScanContext) -> ImageCheck:
    """Check every image; problems are listed individually up to MAX_LISTED, then summed."""
    result = ImageCheck()
    for entry in entries:
        ctx.check_cancel()
        result.count += 1
        result.extensions[entry.suffix.lstrip(".") or "(none)"] += 1
        problem = check_image(entry)
        if problem is None:
            continue
        result.bad += 1
        if len(result.problems) < MAX_LISTED:
            result.problems.append(problem)
    if result.bad > MAX_LISTED:
        result.problems.append(
            Problem(
                Severity.ERROR,
                f"{result.bad} images in total are corrupt, truncated or unreadable "
                f"(the first {MAX_LISTED} are listed).",
            )
        )
    return result


def detect_image_folder(
    folder: str, entries: Sequence[FileEntry], ctx: ScanContext
) -> FormatReport:
    """Loose images; one level of sub-folders under a common folder reads as class labels."""
    report = FormatReport(format="images", path=part_path(folder))
    check = check_images(entries, ctx)
    report.record_count = check.count
    report.details["extensions"] = dict(sorted(check.extensions.items()))
    report.details["corrupt"] = check.bad
    report.problems.extend(check.problems)
    depth = len(folder.split("/")) if folder else 0
    parents = {len(PurePosixPath(e.rel).parts) - depth for e in entries}
    if parents == {2}:
        classes = Counter(PurePosixPath(e.rel).parts[depth] for e in entries)
        if len(classes) >= 2:
            report.classes = sorted(classes)
            report.details["layout"] = "class-folders"
            report.details["perClass"] = dict(sorted(classes.items()))
    return report
