"""One PyInstaller build per test session, shared by the bundle, .deb and clean-system tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE_NAME = "contributor-desk.exe" if sys.platform == "win32" else "contributor-desk"


def need_tool(name: str) -> str:
    """Path of a system tool; skip locally but FAIL in CI (.ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (.ci/run must install it)")
        pytest.skip(f"{name} not installed")
    return path


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/contributor-desk built from packaging/contributor-desk.spec, once per session."""
    work = tmp_path_factory.mktemp("pyinstaller")
    proc = subprocess.run(
        [
            sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
            "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
            str(ROOT / "packaging" / "contributor-desk.spec"),
        ],
        capture_output=True,
        text=True,
        timeout=840,
        cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = work / "dist" / "contributor-desk"
    assert (folder / EXE_NAME).is_file()
    return folder


@pytest.fixture(scope="session")
def deb_file(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb `make deb` builds, from the session's bundle (gzip: faster than xz)."""
    need_tool("dpkg-shlibdeps")
    out = tmp_path_factory.mktemp("deb")
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "packaging" / "linux" / "build_deb.py"),
            str(bundle_dir), "--out", str(out), "--compression", "gzip",
        ],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    (deb,) = out.glob("contributor-desk_*.deb")
    return deb
