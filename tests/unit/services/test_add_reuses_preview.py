"""`add` with the preview of the same paths scans and detects once in all (the import dialog
previews, then adds); with other paths, or no preview, it scans again."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.formats
import app.manifest.scan
from app.services.catalogue import CatalogueService, ImportRequest
from app.services.context import ServiceContext


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"scan": 0, "detect": 0}
    real_scan, real_detect = app.manifest.scan.scan_paths, app.formats.detect

    def scan(*args: object, **kw: object) -> object:
        calls["scan"] += 1
        return real_scan(*args, **kw)  # type: ignore[arg-type]

    def detect(*args: object, **kw: object) -> object:
        calls["detect"] += 1
        return real_detect(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(app.manifest.scan, "scan_paths", scan)
    monkeypatch.setattr(app.formats, "detect", detect)
    return calls


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "a.csv").write_text("x,y\n1,2\n")
    return folder


def test_add_with_the_preview_scans_and_detects_once(
    tmp_path: Path, counted: dict[str, int]
) -> None:
    ctx = ServiceContext(tmp_path / "desk", "http://127.0.0.1:9")
    cat = CatalogueService(ctx)
    folder = _folder(tmp_path, "data")
    preview = cat.preview([folder])
    added = cat.add(ImportRequest(paths=[folder], title="t", preview=preview))
    assert counted == {"scan": 1, "detect": 1}
    assert added.file_count == 1 and added.format == preview.report.primary_format == "csv"
    ctx.close()


def test_add_with_a_preview_of_other_paths_scans_again(
    tmp_path: Path, counted: dict[str, int]
) -> None:
    ctx = ServiceContext(tmp_path / "desk", "http://127.0.0.1:9")
    cat = CatalogueService(ctx)
    preview = cat.preview([_folder(tmp_path, "one")])
    added = cat.add(ImportRequest(paths=[_folder(tmp_path, "two")], preview=preview))
    assert counted == {"scan": 2, "detect": 2}
    assert Path(cat.get(added.id).source_path).name == "two"
    ctx.close()
