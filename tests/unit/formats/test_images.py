"""Image folders: counts, extensions, class folders and damaged images found cheaply."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from app.domain.problems import Severity
from app.formats import detect

from .helpers import by_format, messages


def _image(path: Path, fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, fmt)
    return path


def _cut(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def test_image_folder_counts(tmp_path: Path) -> None:
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "b.JPEG")
    _image(tmp_path / "c.png", "PNG")
    part = by_format(detect(tmp_path), "images")
    assert part.path == "."
    assert part.record_count == 3
    assert part.details["extensions"] == {"jpeg": 1, "jpg": 1, "png": 1}
    assert part.problems == []


def test_class_folders(tmp_path: Path) -> None:
    for name in ("cat/1.jpg", "cat/2.jpg", "dog/1.jpg"):
        _image(tmp_path / "photos" / name)
    part = by_format(detect(tmp_path), "images")
    assert part.path == "photos"
    assert part.classes == ["cat", "dog"]
    assert part.details["perClass"] == {"cat": 2, "dog": 1}


def test_damaged_images_are_reported(tmp_path: Path) -> None:
    _image(tmp_path / "ok.jpg")
    _cut(_image(tmp_path / "cut.jpg"))
    _cut(_image(tmp_path / "cut.png", "PNG"), 0.8)
    (tmp_path / "fake.jpg").write_text("not an image")
    (tmp_path / "zero.png").write_bytes(b"")
    part = by_format(detect(tmp_path), "images")
    assert part.record_count == 5
    assert part.details["corrupt"] == 4
    by_path = {p.path: p for p in part.problems}
    assert set(by_path) == {"cut.jpg", "cut.png", "fake.jpg", "zero.png"}
    assert all(p.severity is Severity.ERROR for p in part.problems)
    assert "truncated" in by_path["cut.jpg"].message
    assert "empty (0 bytes)" in by_path["zero.png"].message


def test_truncated_jpeg_single_file(tmp_path: Path) -> None:
    path = _image(tmp_path / "photo.jpg")
    _cut(path, 0.9)
    part = by_format(detect(path), "images")
    assert "truncated JPEG" in messages(part.problems)


def test_unreadable_image(tmp_path: Path, deny_read: Callable[[Path], None]) -> None:
    path = _image(tmp_path / "locked.jpg")
    deny_read(path)
    part = by_format(detect(tmp_path), "images")
    assert "permission denied" in messages(part.problems)
