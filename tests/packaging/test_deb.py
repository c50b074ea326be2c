"""The Debian package built from the bundle: its layout, its Depends, and lintian's verdict."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import app
from tests.packaging.conftest import need_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _dpkg_deb(*args: str) -> str:
    return subprocess.run(
        ["dpkg-deb", *args], capture_output=True, text=True, check=True, timeout=300
    ).stdout


def test_the_deb_installs_the_bundle_launcher_desktop_entry_icons_and_metainfo(
    deb_file: Path,
) -> None:
    arch = _dpkg_deb("--field", str(deb_file), "Architecture").strip()
    assert deb_file.name == f"contributor-desk_{app.__version__}_{arch}.deb"
    files = {
        line.split(maxsplit=5)[5].split(" -> ")[0].removeprefix(".")
        for line in _dpkg_deb("--contents", str(deb_file)).splitlines()
    }
    for path in (
        "/opt/contributor-desk/contributor-desk",
        "/opt/contributor-desk/_internal/resources/bundled-licenses.json",
        "/usr/bin/contributor-desk",
        "/usr/share/applications/contributor-desk.desktop",
        "/usr/share/icons/hicolor/scalable/apps/contributor-desk.svg",
        "/usr/share/icons/hicolor/256x256/apps/contributor-desk.png",
        "/usr/share/metainfo/dev.contributor_desk.ContributorDesk.metainfo.xml",
        "/usr/share/doc/contributor-desk/copyright",
    ):
        assert path in files, path
    # Nothing of the desktop stack travels in the bundle: it comes from Depends.
    assert not [f for f in files if "/libgtk-3" in f or "/libX11." in f or "/libstdc++" in f]
    depends = _dpkg_deb("--field", str(deb_file), "Depends")
    for package in ("libc6", "libxcb-cursor0", "libxkbcommon-x11-0", "libfontconfig1", "libegl1"):
        assert package in depends, depends


def test_lintian_reports_no_errors(deb_file: Path) -> None:
    lintian = need_tool("lintian")
    proc = subprocess.run(
        [lintian, "--fail-on", "error", "--no-tag-display-limit", str(deb_file)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    errors = [line for line in proc.stdout.splitlines() if line.startswith("E:")]
    assert proc.returncode == 0 and not errors, proc.stdout[-4000:] + proc.stderr[-2000:]
