"""COCO: instances JSON files (one per split) grouped with the images they reference."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport
from app.formats.files import IMAGE_EXTENSIONS, Claim, FileEntry, ScanContext, part_path, under
from app.formats.images import check_images

MAX_LISTED = 10


def is_coco(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("images"), list)
        and isinstance(doc.get("annotations"), list)
    )


def coco_root(rel: str) -> str:
    """Dataset root: the parent of an `annotations/` folder, else the JSON's own folder."""
    parent = PurePosixPath(rel).parent
    if parent.name == "annotations":
        parent = parent.parent
    root = parent.as_posix()
    return "" if root == "." else root


def _split_name(rel: str) -> str:
    stem = PurePosixPath(rel).stem
    for prefix in ("instances_", "person_keypoints_", "captions_", "panoptic_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


def build_coco(
    ctx: ScanContext,
    root: str,
    documents: Sequence[tuple[FileEntry, dict[str, Any]]],
    available: set[str],
) -> Claim:
    """One part per dataset root, with per-split counts and reference checks."""
    report = FormatReport(format="coco", path=part_path(root))
    claim = Claim(report)
    classes: dict[str, None] = {}
    splits: dict[str, dict[str, int]] = {}
    referenced: set[str] = set()
    totals = Counter[str]()
    for entry, doc in documents:
        claim.files.add(entry.rel)
        counts = _check_document(entry, doc, report, classes, referenced)
        splits[_split_name(entry.rel)] = counts
        totals.update(counts)
    images = _match_images(ctx, root, referenced, available, report)
    claim.files.update(e.rel for e in images)
    check = check_images(images, ctx)
    report.problems.extend(check.problems)
    report.classes = list(classes)
    report.record_count = totals["annotations"]
    report.details.update(
        images=totals["images"],
        annotations=totals["annotations"],
        categories=len(classes),
        imageFilesFound=check.count,
        corruptImages=check.bad,
        splits=splits,
    )
    return claim


def _check_document(
    entry: FileEntry,
    doc: dict[str, Any],
    report: FormatReport,
    classes: dict[str, None],
    referenced: set[str],
) -> dict[str, int]:
    images = [i for i in doc["images"] if isinstance(i, dict)]
    annotations = [a for a in doc["annotations"] if isinstance(a, dict)]
    categories = [c for c in doc.get("categories") or [] if isinstance(c, dict)]
    for cat in categories:  # declaration order, which tools write sorted by id
        classes.setdefault(str(cat.get("name", cat.get("id"))), None)
    image_ids = {i.get("id") for i in images}
    category_ids = {c.get("id") for c in categories}
    for img in images:
        name = img.get("file_name")
        if isinstance(name, str) and name:
            referenced.add(name)
    bad_images = [a.get("image_id") for a in annotations if a.get("image_id") not in image_ids]
    _dangling(report, entry, "image_id", "images", bad_images)
    if categories:
        bad_cats = [
            a.get("category_id") for a in annotations if a.get("category_id") not in category_ids
        ]
        _dangling(report, entry, "category_id", "categories", bad_cats)
    duplicates = [k for k, n in Counter(i.get("id") for i in images).items() if n > 1]
    if duplicates:
        report.problems.append(
            Problem(
                Severity.ERROR,
                f"'{entry.rel}' has {len(duplicates)} image ids used more than once "
                f"(e.g. {', '.join(str(d) for d in duplicates[:MAX_LISTED])}).",
                entry.rel,
            )
        )
    return {"images": len(images), "annotations": len(annotations)}


def _dangling(
    report: FormatReport, entry: FileEntry, key: str, target: str, bad: list[Any]
) -> None:
    if not bad:
        return
    shown = ", ".join(str(v) for v in list(dict.fromkeys(bad))[:MAX_LISTED])
    report.problems.append(
        Problem(
            Severity.ERROR,
            f"{len(bad)} annotations in '{entry.rel}' refer to a {key} that is not among its "
            f"{target} ({shown}).",
            entry.rel,
        )
    )


def _match_images(
    ctx: ScanContext, root: str, referenced: set[str], available: set[str], report: FormatReport
) -> list[FileEntry]:
    """Image files under root whose path ends with a referenced file_name."""
    by_name: dict[str, list[str]] = {}
    for rel in available:
        if under(root, rel) and PurePosixPath(rel).suffix.lower() in IMAGE_EXTENSIONS:
            by_name.setdefault(PurePosixPath(rel).name, []).append(rel)
    found: set[str] = set()
    missing: list[str] = []
    for name in sorted(referenced):
        hits = [
            r
            for r in by_name.get(PurePosixPath(name).name, [])
            if r == name or r.endswith("/" + name)
        ]
        if hits:
            found.update(hits)
        else:
            missing.append(name)
    if missing and found:
        report.problems.append(
            Problem(
                Severity.WARNING,
                f"{len(missing)} images referenced by the annotations are not in the folder "
                f"(e.g. {', '.join(missing[:MAX_LISTED])}).",
                part_path(root),
            )
        )
    elif missing:
        report.problems.append(
            Problem(
                Severity.INFO,
                "The annotations come without their images (none of the referenced image "
                "files is in the folder).",
                part_path(root),
            )
        )
    return [ctx.entries[r] for r in sorted(found)]
