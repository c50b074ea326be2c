"""COCO, YOLO (Ultralytics and Darknet) and Pascal VOC on Datumaro's real exports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from app.domain.problems import Severity
from app.formats import detect

from .helpers import by_format, messages

CopyFn = Callable[[str], Path]


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def test_coco_sample(samples: Path) -> None:
    report = detect(samples / "coco")
    assert [p.format for p in report.parts] == ["coco"]  # images are not loose images
    part = report.parts[0]
    assert part.path == "."
    assert part.record_count == 9
    assert part.classes == ["cat", "dog"]
    assert part.details["images"] == 6
    assert part.details["imageFilesFound"] == 6
    assert part.details["splits"] == {
        "train": {"images": 4, "annotations": 6},
        "val": {"images": 2, "annotations": 3},
    }
    assert part.problems == []


def test_coco_dangling_references(sample_copy: CopyFn) -> None:
    root = sample_copy("coco")
    path = root / "annotations" / "instances_train.json"
    doc = json.loads(path.read_text())
    doc["annotations"][0]["image_id"] = 999
    doc["annotations"][1]["category_id"] = 7
    doc["annotations"][2]["category_id"] = 7
    path.write_text(json.dumps(doc))
    part = by_format(detect(root), "coco")
    msg = messages(part.problems)
    assert "1 annotations in 'annotations/instances_train.json' refer to a image_id" in msg
    assert "(999)" in msg
    assert "2 annotations" in msg and "category_id" in msg and "(7)" in msg


def test_coco_missing_and_truncated_images(sample_copy: CopyFn) -> None:
    root = sample_copy("coco")
    (root / "images" / "val" / "s5.jpg").unlink()
    _truncate(root / "images" / "train" / "s1.jpg")
    part = by_format(detect(root), "coco")
    msg = messages(part.problems)
    assert "1 images referenced by the annotations are not in the folder (e.g. s5.jpg)" in msg
    assert "'images/train/s1.jpg' is a truncated JPEG" in msg
    assert part.details["corruptImages"] == 1


def test_coco_annotations_only(sample_copy: CopyFn) -> None:
    root = sample_copy("coco")
    report = detect(root / "annotations")
    part = by_format(report, "coco")
    assert part.record_count == 9
    assert [p.severity for p in part.problems] == [Severity.INFO]


def test_yolo_ultralytics_sample(samples: Path) -> None:
    report = detect(samples / "yolo_ultralytics")
    assert [p.format for p in report.parts] == ["yolo-ultralytics"]
    part = report.parts[0]
    assert part.record_count == 9
    assert part.classes == ["cat", "dog"]
    assert part.details["images"] == 6
    assert part.details["perClass"] == {"cat": 3, "dog": 6}
    assert part.details["splits"] == {
        "train": {"images": 4, "labelled": 4},
        "val": {"images": 2, "labelled": 2},
    }
    assert part.problems == []


def test_yolo_bad_labels_and_unlabelled_images(sample_copy: CopyFn) -> None:
    root = sample_copy("yolo_ultralytics")
    (root / "labels" / "train" / "s0.txt").write_text(
        "5 0.5 0.5 0.1 0.1\n0 1.5 0.5 0.1 0.1\n0 0.5 0.5\n1 0.2 0.2 0.1 0.1\n"
    )
    (root / "labels" / "val" / "s5.txt").unlink()
    part = by_format(detect(root), "yolo-ultralytics")
    msg = messages(part.problems)
    assert "1 label lines have a class id outside 0..1 (first: labels/train/s0.txt:1)" in msg
    assert "1 label lines have coordinates outside [0, 1] (first: labels/train/s0.txt:2)" in msg
    assert "1 label lines are not 'class x y w h' numbers (first: labels/train/s0.txt:3)" in msg
    assert part.details["imagesWithoutLabels"] == 1
    assert part.details["splits"]["val"] == {"images": 2, "labelled": 1}


def test_yolo_darknet_sample(samples: Path) -> None:
    report = detect(samples / "yolo_darknet")
    assert [p.format for p in report.parts] == ["yolo-darknet"]
    part = report.parts[0]
    assert part.record_count == 9
    assert part.classes == ["cat", "dog"]
    assert part.details["images"] == 6
    assert part.details["splits"] == {
        "train": {"images": 4, "found": 4},
        "val": {"images": 2, "found": 2},
    }
    assert part.problems == []


def test_yolo_darknet_class_count_mismatch(sample_copy: CopyFn) -> None:
    root = sample_copy("yolo_darknet")
    (root / "obj.names").write_text("cat\n")
    part = by_format(detect(root), "yolo-darknet")
    msg = messages(part.problems)
    assert "declares 2 classes but obj.names lists 1" in msg
    assert "class id outside 0..0" in msg


def test_voc_sample(samples: Path) -> None:
    report = detect(samples / "voc")
    assert [p.format for p in report.parts] == ["voc"]
    part = report.parts[0]
    assert part.record_count == 9
    assert part.classes == ["cat", "dog"]
    assert part.details["annotationFiles"] == 6
    assert part.details["images"] == 6
    assert part.details["splits"] == {"train": 4, "val": 2}
    assert part.problems == []


def test_voc_malformed_xml_and_entities(sample_copy: CopyFn) -> None:
    root = sample_copy("voc")
    (root / "Annotations" / "s0.xml").write_text("<annotation><object><name>cat</name>")
    (root / "Annotations" / "s1.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "boom">]><annotation>&e;</annotation>'
    )
    part = by_format(detect(root), "voc")
    msg = messages(part.problems)
    assert "'Annotations/s0.xml' is not well-formed XML" in msg
    assert "'Annotations/s1.xml' uses XML entities" in msg
    assert part.record_count == 6  # 9 objects minus s0 (1) and s1 (2)


def test_voc_unreadable_annotation(sample_copy: CopyFn, deny_read: Callable[[Path], None]) -> None:
    root = sample_copy("voc")
    deny_read(root / "Annotations" / "s2.xml")
    part = by_format(detect(root), "voc")
    assert "Cannot read 'Annotations/s2.xml': permission denied" in messages(part.problems)
