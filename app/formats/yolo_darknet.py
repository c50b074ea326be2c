"""YOLO in the Darknet layout: obj.names, obj.data, train.txt and obj_<split>_data/ folders.

Labels sit next to their images (same stem, .txt). Lists written for Darknet name images
relative to Darknet's working folder (`data/obj_train_data/x.jpg`), so list entries are
matched by their trailing path.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport
from app.formats.files import (
    IMAGE_EXTENSIONS,
    Claim,
    ScanContext,
    join,
    part_path,
    read_small,
    under,
)
from app.formats.yolo import LABEL_LIMIT, LabelStats, finish_yolo

_DATA_FOLDER = re.compile(r"^obj_(?P<split>\w+)_data$")
_LIST_NAMES = ("train.txt", "val.txt", "valid.txt", "test.txt")


def find_darknet(ctx: ScanContext, available: set[str]) -> list[Claim]:
    roots = sorted(
        {_parent(r) for r in available if PurePosixPath(r).name in {"obj.names", "obj.data"}}
    )
    return [_darknet(ctx, root, available) for root in roots]


def _parent(rel: str) -> str:
    parent = PurePosixPath(rel).parent.as_posix()
    return "" if parent == "." else parent


def _config(ctx: ScanContext, rel: str, problems: list[Problem]) -> dict[str, str]:
    raw = read_small(ctx.entries[rel], LABEL_LIMIT, problems)
    out: dict[str, str] = {}
    for line in (raw or b"").decode("utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _darknet(ctx: ScanContext, root: str, available: set[str]) -> Claim:
    report = FormatReport(format="yolo-darknet", path=part_path(root))
    claim = Claim(report)
    names_rel, data_rel = join(root, "obj.names"), join(root, "obj.data")
    classes: list[str] = []
    if names_rel in available:
        claim.files.add(names_rel)
        raw = read_small(ctx.entries[names_rel], LABEL_LIMIT, report.problems)
        text = (raw or b"").decode("utf-8", errors="replace")
        classes = [line.strip() for line in text.splitlines() if line.strip()]
    config: dict[str, str] = {}
    if data_rel in available:
        claim.files.add(data_rel)
        config = _config(ctx, data_rel, report.problems)
        declared = config.get("classes", "")
        if declared.isdigit() and classes and int(declared) != len(classes):
            report.problems.append(
                Problem(
                    Severity.ERROR,
                    f"'{data_rel}' declares {declared} classes but obj.names lists {len(classes)}.",
                    data_rel,
                )
            )
        if not classes and declared.isdigit():
            classes = [str(i) for i in range(int(declared))]
    images = sorted(
        r
        for r in available
        if under(root, r)
        and PurePosixPath(r).suffix.lower() in IMAGE_EXTENSIONS
        and any(_DATA_FOLDER.match(p) for p in PurePosixPath(r).parts[:-1])
    )
    splits: dict[str, dict[str, int]] = {}
    by_tail = {r[len(root) + 1 :] if root else r: r for r in images}
    for list_name in _LIST_NAMES:
        list_rel = join(root, list_name)
        if list_rel not in available:
            continue
        claim.files.add(list_rel)
        raw = read_small(ctx.entries[list_rel], LABEL_LIMIT, report.problems)
        listed = [
            ln.strip() for ln in (raw or b"").decode("utf-8", "replace").splitlines() if ln.strip()
        ]
        found = [_match(by_tail, ref) for ref in listed]
        missing = [ref for ref, hit in zip(listed, found, strict=True) if hit is None]
        splits[list_name[:-4]] = {"images": len(listed), "found": len(listed) - len(missing)}
        if missing:
            report.problems.append(
                Problem(
                    Severity.WARNING,
                    f"{len(missing)} images listed in '{list_rel}' are not in the folder "
                    f"(e.g. {', '.join(missing[:3])}).",
                    list_rel,
                )
            )
    label_for = {r: str(PurePosixPath(r).with_suffix(".txt")) for r in images}
    labels = [
        r
        for r in available
        if under(root, r)
        and r.endswith(".txt")
        and any(_DATA_FOLDER.match(p) for p in PurePosixPath(r).parts[:-1])
    ]
    claim.files.update(images)
    claim.files.update(labels)
    stats = LabelStats(len(classes))
    finish_yolo(ctx, claim, [ctx.entries[r] for r in images], label_for, labels, stats, classes)
    if not splits:
        for r in images:
            folder = next(p for p in PurePosixPath(r).parts[:-1] if _DATA_FOLDER.match(p))
            match = _DATA_FOLDER.match(folder)
            name = match.group("split") if match else folder
            entry = splits.setdefault(name, {"images": 0, "found": 0})
            entry["images"] += 1
            entry["found"] += 1
    report.details["splits"] = splits
    if config:
        report.details["config"] = config
    return claim


def _match(by_tail: dict[str, str], ref: str) -> str | None:
    """Match a Darknet list entry by dropping leading folders until it names a file here."""
    parts = ref.replace("\\", "/").split("/")
    for start in range(len(parts)):
        hit = by_tail.get("/".join(parts[start:]))
        if hit is not None:
            return hit
    return None
