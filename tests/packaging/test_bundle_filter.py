"""The keep/drop rules of the lean bundle (packaging/bundle_filter.py) and its size report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bundle_filter = _load("bundle_filter", ROOT / "packaging" / "bundle_filter.py")
sizes = _load("bundle_sizes", ROOT / "packaging" / "sizes.py")
SITE = "/venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("dest", "src"),
    [
        ("PySide6/Qt/lib/libQt6Widgets.so.6", f"{SITE}/PySide6/Qt/lib/libQt6Widgets.so.6"),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", None),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", None),
        ("PySide6/Qt/plugins/iconengines/libqsvgicon.so", None),
        ("PySide6/Qt/plugins/imageformats/libqsvg.so", None),
        ("PySide6/plugins/platforms/qwindows.dll", None),
        ("libpython3.11.so.1.0", "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"),
        ("libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3"),
    ],
)
def test_what_the_app_loads_is_kept(dest: str, src: str | None) -> None:
    assert bundle_filter.keep(dest, src, "linux")


@pytest.mark.parametrize(
    ("dest", "src"),
    [
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", None),
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", None),
        ("PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so", None),
        ("PySide6/Qt/plugins/tls/libqopensslbackend.so", None),
        ("PySide6/Qt/translations/qtbase_de.qm", None),
        ("PySide6/Qt/lib/libQt6Network.so.6", None),
        ("PySide6/Qt/lib/libQt6WaylandClient.so.6", None),
        ("pyarrow/libarrow.so.2600", f"{SITE}/pyarrow/libarrow.so.2600"),
        ("pyarrow/libparquet.so.2600", None),
        ("pyarrow/_parquet.cpython-311-x86_64-linux-gnu.so", None),
        ("pyarrow/lib.cpython-311-x86_64-linux-gnu.so", None),
        ("libarrow.so.2600", f"{SITE}/pyarrow/libarrow.so.2600"),
        ("arrow.dll", None),
        ("parquet.dll", None),
        ("pyarrow/libarrow_flight.so.2600", None),
        ("numpy.libs/libscipy_openblas64_-32a4b2a6.so", None),
        ("numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so", None),
        ("pyarrow/libarrow_s3.so.2600", None),
        ("pyarrow/libarrow_python_flight.so.2600", None),
        ("pyarrow/include/arrow/api.h", None),
        ("pyarrow/_parquet.pyx", None),
        ("libgtk-3.so.0", "/usr/lib/x86_64-linux-gnu/libgtk-3.so.0"),
        ("libX11.so.6", "/usr/lib/x86_64-linux-gnu/libX11.so.6"),
        ("libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
    ],
)
def test_what_the_app_never_loads_is_dropped(dest: str, src: str | None) -> None:
    assert not bundle_filter.keep(dest, src, "linux")


def test_system_libraries_stay_in_bundles_for_other_platforms() -> None:
    assert bundle_filter.keep("libz.1.dylib", "/usr/lib/libz.1.dylib", "darwin")


def test_uvicorn_keeps_asyncio_and_h11_only() -> None:
    assert bundle_filter.keep_uvicorn_module("uvicorn.protocols.http.h11_impl")
    assert bundle_filter.keep_uvicorn_module("uvicorn.loops.asyncio")
    assert not bundle_filter.keep_uvicorn_module("uvicorn.loops.uvloop")
    assert not bundle_filter.keep_uvicorn_module("uvicorn.protocols.http.httptools_impl")
    for name in (
        "psycopg",
        "uvloop",
        "httptools",
        "websockets",
        "PySide6.QtNetwork",
        "pyarrow",
        "numpy",
        "pyqtgraph",
    ):
        assert name in bundle_filter.EXCLUDED_MODULES


def test_the_license_list_names_qt_under_the_lgpl_and_not_what_is_left_out() -> None:
    rows = json.loads(bundle_filter.licenses_document())
    by_name = {row["name"].lower().replace("_", "-"): row for row in rows}
    assert "LGPL-3.0" in by_name["pyside6-essentials"]["license"]
    assert "LGPL-3.0" in by_name["shiboken6"]["license"]
    assert by_name["contributor-desk"]["license"] == "Apache-2.0"
    for name in ("sqlalchemy", "fastapi", "uvicorn", "python"):
        assert name in by_name and by_name[name]["version"]
    for dropped in (
        "psycopg",
        "psycopg-binary",
        "uvloop",
        "httptools",
        "pytest",
        "pyarrow",
        "numpy",
    ):
        assert dropped not in by_name


def test_the_size_report_lists_the_largest_parts_and_ignores_links(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "contributor-desk"
    (bundle / "_internal" / "big").mkdir(parents=True)
    (bundle / "_internal" / "big" / "a.so").write_bytes(b"x" * 3_000_000)
    (bundle / "_internal" / "small.so").write_bytes(b"x" * 1_000_000)
    (bundle / "_internal" / "link.so").symlink_to("small.so")
    (bundle / "contributor-desk").write_bytes(b"x" * 2_000_000)
    archive = tmp_path / "out.tar.gz"
    assert sizes.main([str(bundle), "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "6.0 MB unpacked" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [line[-1] for line in lines] == ["big", "contributor-desk", "small.so", "link.so"]
    assert archive.is_file() and "compressed" in out
