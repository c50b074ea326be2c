"""YOLO label files (shared by the Ultralytics and Darknet layouts) and the Ultralytics layout.

A YOLO label line is `class x y w h` (or a polygon / keypoints after the class), all
coordinates normalised to [0, 1]. Bad class ids and out-of-range coordinates silently
break training, so each is reported with the first offending file:line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport
from app.formats.files import (
    IMAGE_EXTENSIONS,
    Claim,
    FileEntry,
    ScanContext,
    join,
    part_path,
    read_small,
    under,
)
from app.formats.images import check_images

YAML_LIMIT = 1024 * 1024
LABEL_LIMIT = 16 * 1024 * 1024
MAX_LISTED = 10


@dataclass(slots=True)
class _Issue:
    count: int = 0
    where: list[str] = field(default_factory=list)

    def add(self, where: str) -> None:
        self.count += 1
        if len(self.where) < MAX_LISTED:
            self.where.append(where)


@dataclass(slots=True)
class LabelStats:
    """Objects counted and defects found across a dataset's label files."""

    class_count: int
    boxes_only: bool = False  # keypoint datasets: only the box part is normalised
    objects: int = 0
    per_class: dict[int, int] = field(default_factory=dict)
    bad_class: _Issue = field(default_factory=_Issue)
    out_of_range: _Issue = field(default_factory=_Issue)
    malformed: _Issue = field(default_factory=_Issue)

    def read(self, entry: FileEntry, problems: list[Problem]) -> None:
        raw = read_small(entry, LABEL_LIMIT, problems)
        if raw is None:
            return
        text = raw.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if fields:
                self._line(fields, f"{entry.rel}:{number}")

    def _line(self, fields: list[str], where: str) -> None:
        self.objects += 1
        try:
            cls_value = float(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            self.malformed.add(where)
            return
        if len(values) < 4 or not cls_value.is_integer():
            self.malformed.add(where)
            return
        cls = int(cls_value)
        if not 0 <= cls < self.class_count:
            self.bad_class.add(where)
        else:
            self.per_class[cls] = self.per_class.get(cls, 0) + 1
        checked = values[:4] if self.boxes_only else values
        if any(not 0.0 <= v <= 1.0 for v in checked):
            self.out_of_range.add(where)

    def report_into(self, report: FormatReport) -> None:
        report.record_count = self.objects
        for issue, what in (
            (self.bad_class, f"have a class id outside 0..{self.class_count - 1}"),
            (self.out_of_range, "have coordinates outside [0, 1]"),
            (self.malformed, "are not 'class x y w h' numbers"),
        ):
            if issue.count:
                report.problems.append(
                    Problem(
                        Severity.ERROR,
                        f"{issue.count} label lines {what} (first: {', '.join(issue.where)}).",
                        issue.where[0].rsplit(":", 1)[0],
                    )
                )


def finish_yolo(
    ctx: ScanContext,
    claim: Claim,
    images: Sequence[FileEntry],
    label_for: dict[str, str],
    labels: Iterable[str],
    stats: LabelStats,
    classes: list[str],
) -> None:
    """Common ending: image checks, label checks, images without labels and vice versa."""
    report = claim.report
    label_set = set(labels)
    for rel in sorted(label_set):
        ctx.check_cancel()
        stats.read(ctx.entries[rel], report.problems)
    stats.report_into(report)
    check = check_images(images, ctx)
    report.problems.extend(check.problems)
    without = [e.rel for e in images if label_for.get(e.rel) not in label_set]
    orphans = sorted(label_set - set(label_for.values()))
    report.classes = classes
    report.details.update(
        images=len(images),
        labelFiles=len(label_set),
        imagesWithoutLabels=len(without),
        corruptImages=check.bad,
        perClass={
            classes[k] if k < len(classes) else str(k): n
            for k, n in sorted(stats.per_class.items())
        },
    )
    if without:
        report.problems.append(
            Problem(
                Severity.INFO,
                f"{len(without)} images have no label file (treated as background images; "
                f"e.g. {', '.join(without[:3])}).",
                report.path,
            )
        )
    if orphans:
        report.problems.append(
            Problem(
                Severity.WARNING,
                f"{len(orphans)} label files have no image (e.g. {', '.join(orphans[:3])}).",
                report.path,
            )
        )


def names_list(names: Any) -> list[str] | None:
    """Class names from a data.yaml `names` entry: a list or an {index: name} mapping."""
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            keyed = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            return None
        return [keyed.get(i, str(i)) for i in range(max(keyed) + 1)] if keyed else []
    return None


def _parent(rel: str) -> str:
    parent = PurePosixPath(rel).parent.as_posix()
    return "" if parent == "." else parent


def _resolve(root: str, ref: str) -> str:
    ref = ref.strip().replace("\\", "/")
    while ref.startswith("./"):
        ref = ref[2:]
    return join(root, ref.rstrip("/"))


def ultralytics_label(rel: str) -> str:
    """Ultralytics' own rule: the last /images/ becomes /labels/, the extension .txt."""
    head, sep, tail = ("/" + rel).rpartition("/images/")
    if not sep:
        return ""
    return (head + "/labels/" + str(PurePosixPath(tail).with_suffix(".txt")))[1:]


def find_ultralytics(ctx: ScanContext, available: set[str]) -> list[Claim]:
    claims: list[Claim] = []
    taken: set[str] = set()
    for rel in sorted(available):
        if PurePosixPath(rel).suffix.lower() not in {".yaml", ".yml"} or rel in taken:
            continue
        problems: list[Problem] = []
        raw = read_small(ctx.entries[rel], YAML_LIMIT, problems)
        try:
            config = yaml.safe_load(raw) if raw is not None else None
        except (yaml.YAMLError, RecursionError):  # RecursionError: nested thousands deep
            continue
        if not isinstance(config, dict) or "names" not in config:
            continue
        if not any(k in config for k in ("train", "val", "test")):
            continue
        root = _parent(rel)
        claim = _ultralytics(ctx, rel, root, config, available - taken)
        taken |= claim.files
        claims.append(claim)
    return claims


def _ultralytics(
    ctx: ScanContext, yaml_rel: str, root: str, config: dict[str, Any], available: set[str]
) -> Claim:
    report = FormatReport(format="yolo-ultralytics", path=part_path(root))
    claim = Claim(report, {yaml_rel})
    classes = names_list(config.get("names"))
    if classes is None:
        report.problems.append(
            Problem(Severity.ERROR, f"'names' in '{yaml_rel}' is not a list of names.", yaml_rel)
        )
        classes = []
    images = [
        r
        for r in available
        if under(root, r)
        and PurePosixPath(r).suffix.lower() in IMAGE_EXTENSIONS
        and "/images/" in "/" + r[len(root) :]
    ]
    label_for = {r: ultralytics_label(r) for r in images}
    labels = [
        r
        for r in available
        if under(root, r) and r.endswith(".txt") and "/labels/" in "/" + r[len(root) :]
    ]
    splits: dict[str, dict[str, int]] = {}
    for key in ("train", "val", "test"):
        value = config.get(key)
        refs = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        members: set[str] = set()
        for ref in refs:
            target = _resolve(root, str(ref))
            if target in available and target.endswith(".txt"):
                claim.files.add(target)
                members |= _listed_images(ctx, root, target, report.problems)
            else:
                members |= {r for r in images if under(target, r)}
        if refs:
            found = [r for r in images if r in members]
            splits[key] = {
                "images": len(found),
                "labelled": sum(1 for r in found if label_for[r] in labels),
            }
    claim.files.update(images)
    claim.files.update(labels)
    claim.files.update(
        r for r in available if under(root, r) and "/labels/" in "/" + r and r.endswith(".cache")
    )
    stats = LabelStats(len(classes), boxes_only="kpt_shape" in config)
    finish_yolo(
        ctx, claim, [ctx.entries[r] for r in sorted(images)], label_for, labels, stats, classes
    )
    report.details["splits"] = splits
    report.details["config"] = yaml_rel
    return claim


def _listed_images(ctx: ScanContext, root: str, list_rel: str, problems: list[Problem]) -> set[str]:
    raw = read_small(ctx.entries[list_rel], LABEL_LIMIT, problems)
    if raw is None:
        return set()
    return {
        _resolve(root, line)
        for line in raw.decode("utf-8", errors="replace").splitlines()
        if line.strip()
    }
