"""Pascal VOC: Annotations/*.xml (parsed with defusedxml), ImageSets, JPEGImages, labelmap."""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

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
from app.formats.images import check_images

XML_LIMIT = 16 * 1024 * 1024
MAX_LISTED = 10
_OWNED_FOLDERS = (
    "Annotations",
    "ImageSets",
    "JPEGImages",
    "SegmentationClass",
    "SegmentationObject",
)


def find_voc(ctx: ScanContext, available: set[str]) -> list[Claim]:
    roots = sorted(
        {
            _root_of(r)
            for r in available
            if r.lower().endswith(".xml") and "Annotations" in PurePosixPath(r).parts[:-1]
        }
    )
    return [_voc(ctx, root, available) for root in roots]


def _root_of(rel: str) -> str:
    parts = PurePosixPath(rel).parts
    index = len(parts) - 1 - parts[::-1].index("Annotations")
    return "/".join(parts[:index])


def _voc(ctx: ScanContext, root: str, available: set[str]) -> Claim:
    report = FormatReport(format="voc", path=part_path(root))
    owned = {r for r in available if any(under(join(root, f), r) for f in _OWNED_FOLDERS)}
    claim = Claim(report, owned)
    labelmap = join(root, "labelmap.txt")
    declared: list[str] = []
    if labelmap in available:
        claim.files.add(labelmap)
        declared = _labelmap(ctx, labelmap, report.problems)
    objects = Counter[str]()
    filenames: set[str] = set()
    bad_xml = 0
    xml_files = sorted(
        r for r in owned if under(join(root, "Annotations"), r) and r.endswith(".xml")
    )
    for rel in xml_files:
        ctx.check_cancel()
        problem = _parse(ctx, rel, objects, filenames)
        if problem is not None:
            bad_xml += 1
            if bad_xml <= MAX_LISTED:
                report.problems.append(problem)
    if bad_xml > MAX_LISTED:
        report.problems.append(
            Problem(Severity.ERROR, f"{bad_xml} annotation files in total cannot be parsed.")
        )
    images = sorted(
        r
        for r in owned
        if under(join(root, "JPEGImages"), r)
        and PurePosixPath(r).suffix.lower() in IMAGE_EXTENSIONS
    )
    check = check_images([ctx.entries[r] for r in images], ctx)
    report.problems.extend(check.problems)
    names = {PurePosixPath(r).name for r in images}
    missing = sorted(filenames - names)
    if missing and images:
        report.problems.append(
            Problem(
                Severity.WARNING,
                f"{len(missing)} images named in the annotations are not in JPEGImages "
                f"(e.g. {', '.join(missing[:3])}).",
                part_path(root),
            )
        )
    undeclared = sorted(set(objects) - set(declared)) if declared else []
    if undeclared:
        report.problems.append(
            Problem(
                Severity.WARNING,
                f"Objects use labels missing from labelmap.txt: {', '.join(undeclared)}.",
                labelmap,
            )
        )
    report.classes = declared + undeclared if declared else sorted(objects)
    report.record_count = sum(objects.values())
    report.details.update(
        annotationFiles=len(xml_files),
        images=len(images),
        corruptImages=check.bad,
        objects=sum(objects.values()),
        perClass=dict(sorted(objects.items())),
        splits=_splits(ctx, root, owned),
    )
    return claim


def _labelmap(ctx: ScanContext, rel: str, problems: list[Problem]) -> list[str]:
    """Datumaro/CVAT labelmap: `name:color:parts:actions`, 'background' is not a class."""
    raw = read_small(ctx.entries[rel], XML_LIMIT, problems)
    names: list[str] = []
    for line in (raw or b"").decode("utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name = line.split(":", 1)[0].strip()
        if name and name != "background":
            names.append(name)
    return names


def _parse(
    ctx: ScanContext, rel: str, objects: Counter[str], filenames: set[str]
) -> Problem | None:
    problems: list[Problem] = []
    raw = read_small(ctx.entries[rel], XML_LIMIT, problems)
    if raw is None:
        return problems[0] if problems else None
    if not raw:
        return Problem(Severity.ERROR, f"'{rel}' is empty (0 bytes).", rel)
    try:
        tree = fromstring(raw)
    except ParseError as exc:
        return Problem(Severity.ERROR, f"'{rel}' is not well-formed XML: {exc}.", rel)
    except DefusedXmlException:
        return Problem(
            Severity.ERROR, f"'{rel}' uses XML entities or DTDs, refused for safety.", rel
        )
    if tree.tag != "annotation":
        return Problem(Severity.ERROR, f"'{rel}' is XML but not a VOC <annotation>.", rel)
    filename = tree.findtext("filename")
    if filename:
        filenames.add(filename.strip())
    for obj in tree.iter("object"):
        name = (obj.findtext("name") or "").strip()
        objects[name or "(unnamed)"] += 1
    return None


def _splits(ctx: ScanContext, root: str, owned: set[str]) -> dict[str, int]:
    main = join(root, "ImageSets/Main")
    splits: dict[str, int] = {}
    for rel in sorted(r for r in owned if _is_split_list(main, r)):
        raw = read_small(ctx.entries[rel], XML_LIMIT, [])
        if raw is not None:
            lines = raw.decode("utf-8", errors="replace").splitlines()
            splits[PurePosixPath(rel).stem] = sum(1 for ln in lines if ln.strip())
    return splits


def _is_split_list(main: str, rel: str) -> bool:
    return (
        PurePosixPath(rel).parent.as_posix() == main
        and rel.endswith(".txt")
        and "_" not in (PurePosixPath(rel).stem)
    )
