"""Runs the detectors over a file or folder and assembles one DetectionReport.

Layout formats (Hugging Face, VOC, YOLO, COCO) run first and claim the files they own, so a
COCO image is never also reported as a loose image. What is left is reported file by file
(tables, JSON) or as one group (loose images).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from app.domain.errors import BadInputError
from app.domain.problems import Problem, Severity
from app.formats.base import DetectionReport, FormatReport
from app.formats.coco import build_coco, coco_root, is_coco
from app.formats.delimited import detect_delimited
from app.formats.files import (
    DOC_NAMES,
    IMAGE_EXTENSIONS,
    CancelFn,
    Claim,
    FileEntry,
    ScanContext,
    list_files,
    part_path,
    problem_for_os_error,
)
from app.formats.huggingface import find_hub, find_save_to_disk
from app.formats.images import detect_image_folder
from app.formats.jsondata import detect_json, detect_jsonl, sniff_json
from app.formats.label_studio import detect_label_studio, is_label_studio_task
from app.formats.parquet import detect_parquet
from app.formats.voc import find_voc
from app.formats.yolo import find_ultralytics
from app.formats.yolo_darknet import find_darknet

FORMATS = (
    "csv",
    "tsv",
    "json",
    "jsonl",
    "parquet",
    "images",
    "coco",
    "yolo-ultralytics",
    "yolo-darknet",
    "voc",
    "label-studio",
    "hf-save-to-disk",
    "hf-hub",
    "unknown",
)

# Most specific layouts first: each claims its files before the next looks.
_LAYOUT_FINDERS: tuple[Callable[[ScanContext, set[str]], list[Claim]], ...] = (
    find_save_to_disk,
    find_hub,
    find_voc,
    find_darknet,
    find_ultralytics,
)


def detect(
    path: Path,
    *,
    files: Sequence[str] | None = None,
    cancel: CancelFn | None = None,
) -> DetectionReport:
    """Report every format recognised under `path` (a file or a folder).

    `files` are relative POSIX paths already listed by the scanner; without them the folder
    is walked (symlinks are not followed). Problems in the data are returned in the report;
    only a missing `path` raises BadInputError, and `cancel()` returning True raises
    Cancelled.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise BadInputError(
            f"'{path}' does not exist.", hint="check the path, or re-add the moved files"
        )
    if path.is_symlink():
        return DetectionReport(
            problems=[
                Problem(Severity.ERROR, f"'{path.name}' is a symbolic link; it was not followed.")
            ]
        )
    if path.is_dir():
        entries, problems = list_files(path, files, cancel)
        return _detect_folder(ScanContext(path, entries, cancel, problems))
    return _detect_single(path, cancel)


def _detect_single(path: Path, cancel: CancelFn | None) -> DetectionReport:
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        return DetectionReport(problems=[problem_for_os_error(exc, name)])
    entry = FileEntry(name, path, size)
    ctx = ScanContext(path.parent, {name: entry}, cancel)
    report = _detect_folder(ctx)
    return report


def _detect_folder(ctx: ScanContext) -> DetectionReport:
    report = DetectionReport(problems=list(ctx.problems))
    available = set(ctx.entries)
    for finder in _LAYOUT_FINDERS:
        ctx.check_cancel()
        for claim in finder(ctx, available):
            report.parts.append(claim.report)
            available -= claim.files
    report.parts.extend(_json_parts(ctx, available))
    report.parts.extend(_loose_parts(ctx, available, report.problems))
    report.parts.sort(key=lambda p: (p.path, p.format))
    return report


def _json_parts(ctx: ScanContext, available: set[str]) -> list[FormatReport]:
    """Classify every .json: COCO (grouped per dataset root), Label Studio, or plain JSON."""
    parts: list[FormatReport] = []
    coco_docs: dict[str, list[tuple[FileEntry, dict[str, Any]]]] = defaultdict(list)
    for rel in sorted(r for r in available if r.lower().endswith(".json")):
        ctx.check_cancel()
        entry = ctx.entries[rel]
        sniff = sniff_json(entry)
        if is_coco(sniff.document):
            coco_docs[coco_root(rel)].append((entry, sniff.document))
        elif sniff.kind == "array" and is_label_studio_task(sniff.first_element):
            parts.append(detect_label_studio(entry, ctx))
        else:
            parts.append(detect_json(entry, sniff, ctx))
        available.discard(rel)
    for root, documents in sorted(coco_docs.items()):
        claim = build_coco(ctx, root, documents, available)
        available -= claim.files
        parts.append(claim.report)
    return parts


def _loose_parts(
    ctx: ScanContext, available: set[str], problems: list[Problem]
) -> list[FormatReport]:
    parts: list[FormatReport] = []
    images: list[FileEntry] = []
    unknown: list[FileEntry] = []
    for rel in sorted(available):
        ctx.check_cancel()
        entry = ctx.entries[rel]
        suffix = entry.suffix
        if suffix == ".csv":
            parts.append(detect_delimited(entry, "csv", ctx))
        elif suffix in {".tsv", ".tab"}:
            parts.append(detect_delimited(entry, "tsv", ctx))
        elif suffix in {".jsonl", ".ndjson"}:
            parts.append(detect_jsonl(entry, ctx))
        elif suffix == ".parquet":
            parts.append(detect_parquet(entry))
        elif suffix in IMAGE_EXTENSIONS:
            images.append(entry)
        elif entry.name.lower() not in DOC_NAMES:
            unknown.append(entry)
    if images:
        folder = _common_folder([e.rel for e in images])
        parts.append(detect_image_folder(folder, images, ctx))
    if unknown:
        empties = [e.rel for e in unknown if e.size == 0]
        for rel in empties[:10]:
            problems.append(Problem(Severity.WARNING, f"'{rel}' is empty (0 bytes).", rel))
        if not parts and not _has_parts_elsewhere(ctx, available):
            parts.append(_unknown_part(unknown))
        else:
            shown = ", ".join(e.rel for e in unknown[:5])
            problems.append(
                Problem(
                    Severity.INFO,
                    f"{len(unknown)} files are not in a recognised format (e.g. {shown}).",
                )
            )
    return parts


def _has_parts_elsewhere(ctx: ScanContext, available: set[str]) -> bool:
    """Whether layout or JSON detectors claimed anything (then leftovers are extras)."""
    return len(available) < len(ctx.entries)


def _unknown_part(unknown: list[FileEntry]) -> FormatReport:
    folder = _common_folder([e.rel for e in unknown]) if len(unknown) > 1 else unknown[0].rel
    extensions = Counter(e.suffix.lstrip(".") or "(none)" for e in unknown)
    return FormatReport(
        format="unknown",
        path=part_path(folder),
        record_count=None,
        details={"files": len(unknown), "extensions": dict(sorted(extensions.items()))},
    )


def _common_folder(rels: list[str]) -> str:
    parents = [PurePosixPath(r).parent.parts for r in rels]
    common: list[str] = []
    for items in zip(*parents, strict=False):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    return "/".join(common)
