"""detect(): mixed folders, the scanner's listing, odd names, unreadable folders, cancel."""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from app.domain.errors import BadInputError, Cancelled
from app.domain.problems import Severity
from app.formats import FORMATS, DetectionReport, detect

from .helpers import by_format, messages


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_all_samples_in_one_folder(samples: Path) -> None:
    report = detect(samples)
    got = sorted((p.format, p.path) for p in report.parts)
    assert got == [
        ("coco", "coco"),
        ("csv", "csv/diabetes.csv"),
        ("hf-hub", "hf_hub"),
        ("hf-save-to-disk", "hf_save_to_disk"),
        ("label-studio", "label_studio/project-1-at-2026-11-20-10-20-export.json"),
        ("parquet", "parquet/diabetes.parquet"),
        ("tsv", "tsv/linnerud.tsv"),
        ("voc", "voc"),
        ("yolo-darknet", "yolo_darknet"),
        ("yolo-ultralytics", "yolo_ultralytics"),
    ]
    assert report.primary_format == "mixed"
    assert report.problems == []
    assert {p.format for p in report.parts} <= set(FORMATS)
    round_trip = DetectionReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert round_trip.to_dict() == report.to_dict()


def test_files_listing_gives_the_same_report(samples: Path) -> None:
    walked = detect(samples)
    listed = detect(samples, files=_listing(samples))
    assert listed.to_dict() == walked.to_dict()


def test_listed_file_that_vanished(samples: Path, tmp_path: Path) -> None:
    root = tmp_path / "t"
    shutil.copytree(samples / "tsv", root)
    report = detect(root, files=["linnerud.tsv", "gone.csv"])
    assert by_format(report, "tsv").record_count == 20
    assert "'gone.csv' was listed but no longer exists" in messages(report.problems)


def test_coco_with_loose_csv_gives_two_parts(samples: Path, tmp_path: Path) -> None:
    shutil.copytree(samples / "coco", tmp_path / "coco")
    shutil.copy(samples / "csv" / "diabetes.csv", tmp_path / "extra table.csv")
    report = detect(tmp_path)
    assert sorted(p.format for p in report.parts) == ["coco", "csv"]
    assert by_format(report, "coco").details["imageFilesFound"] == 6


def test_coco_folder_with_an_extra_loose_image(samples: Path, tmp_path: Path) -> None:
    shutil.copytree(samples / "coco", tmp_path / "coco")
    shutil.copy(samples / "coco" / "images" / "train" / "s0.jpg", tmp_path / "coco" / "cover.jpg")
    report = detect(tmp_path / "coco")
    assert sorted((p.format, p.record_count) for p in report.parts) == [
        ("coco", 9),
        ("images", 1),
    ]


def test_odd_names(samples: Path, tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "Café data")
    folder = tmp_path / nfd
    folder.mkdir()
    shutil.copy(samples / "tsv" / "linnerud.tsv", folder / "line\nbreak.tsv")
    shutil.copy(samples / "csv" / "diabetes.csv", folder / "with space.csv")
    report = detect(tmp_path)
    assert sorted((p.path, p.record_count) for p in report.parts) == [
        (f"{nfd}/line\nbreak.tsv", 20),
        (f"{nfd}/with space.csv", 442),
    ]


def test_single_file_paths_are_its_name(samples: Path) -> None:
    report = detect(samples / "tsv" / "linnerud.tsv")
    assert [(p.format, p.path) for p in report.parts] == [("tsv", "linnerud.tsv")]


def test_missing_path_raises_known_error(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        detect(tmp_path / "nope")


def test_unknown_files_only(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("hello")
    (tmp_path / "model.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "notes.docx").write_bytes(b"PK")
    (tmp_path / "empty.dat").write_bytes(b"")
    report = detect(tmp_path)
    part = by_format(report, "unknown")
    assert part.details == {"files": 3, "extensions": {"bin": 1, "dat": 1, "docx": 1}}
    assert report.primary_format == "unknown"
    assert "'empty.dat' is empty (0 bytes)" in messages(report.problems)


def test_unknown_extras_next_to_a_format_are_info(samples: Path, tmp_path: Path) -> None:
    shutil.copy(samples / "csv" / "diabetes.csv", tmp_path / "d.csv")
    (tmp_path / "notes.docx").write_bytes(b"PK")
    report = detect(tmp_path)
    assert report.primary_format == "csv"
    assert [p.severity for p in report.problems] == [Severity.INFO]


def test_empty_folder(tmp_path: Path) -> None:
    report = detect(tmp_path)
    assert report.parts == [] and report.primary_format == "unknown"


def test_unreadable_folder_is_a_problem(
    samples: Path, tmp_path: Path, deny_read: Callable[[Path], None]
) -> None:
    shutil.copy(samples / "csv" / "diabetes.csv", tmp_path / "d.csv")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "hidden.csv").write_text("a\n1\n")
    deny_read(locked)
    report = detect(tmp_path)
    assert [(p.format, p.path) for p in report.parts] == [("csv", "d.csv")]
    errors = [p for p in report.problems if p.severity is Severity.ERROR]
    assert len(errors) == 1 and errors[0].path == "locked"
    assert "permission denied" in errors[0].message


def test_unreadable_root_folder(tmp_path: Path, deny_read: Callable[[Path], None]) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    deny_read(tmp_path)
    report = detect(tmp_path)
    assert report.parts == []
    assert "Cannot open folder '.'" in messages(report.problems)


def test_symlinks_are_not_followed_and_loops_end(samples: Path, tmp_path: Path) -> None:
    shutil.copy(samples / "tsv" / "linnerud.tsv", tmp_path / "t.tsv")
    os.symlink(tmp_path, tmp_path / "loop")
    os.symlink(samples / "csv" / "diabetes.csv", tmp_path / "link.csv")
    report = detect(tmp_path)
    assert [(p.format, p.path) for p in report.parts] == [("tsv", "t.tsv")]
    assert sorted(p.path for p in report.problems) == ["link.csv", "loop"]
    assert all("symbolic link" in p.message for p in report.problems)


def test_cancel_raises_cancelled(samples: Path) -> None:
    calls = 0

    def cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    with pytest.raises(Cancelled):
        detect(samples, cancel=cancel)
    assert calls == 4
