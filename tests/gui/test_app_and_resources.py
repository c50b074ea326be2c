"""Whole-app paths: --self-test in a real process, theme rebuild, and the shipped resources."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from PySide6.QtCore import QSize

from app.ui.resources import icon_path, render_svg, resources_dir, themed_icon
from app.ui.theme import DARK, LIGHT, resolve_theme, stylesheet

ICONS = [
    "app",
    "catalogue",
    "uploads",
    "rewards",
    "settings",
    "add-file",
    "add-folder",
    "search",
    "sync",
    "verify",
    "export",
    "reveal",
    "submit",
    "sign",
    "drop",
    "dataset",
    "annotation",
    "empty-box",
    "warning",
    "info",
    "error",
]


@pytest.mark.slow
def test_self_test_runs_offscreen_and_exits_zero(data_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)  # --self-test must force offscreen by itself
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # it must not need one
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--self-test"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "self-test: OK" in proc.stdout
    assert "added #1" in proc.stdout
    assert "signed with" in proc.stdout
    assert "accepted by the registry" in proc.stdout
    assert not data_dir.exists() or not (data_dir / "catalogue.sqlite3").exists()


def test_theme_change_rebuilds_the_window_without_quitting(qtbot: Any, ctx: Any, qapp: Any) -> None:
    from app.settings import THEME
    from app.ui.app import GuiSession

    session = GuiSession(ctx, qapp, debug=False)
    first = session.build_window()
    qtbot.addWidget(first)
    first.show()
    first.settings_view.theme_combo.setCurrentIndex(
        first.settings_view.theme_combo.findData("dark")
    )
    second = session.window
    assert second is not None and second is not first
    qtbot.addWidget(second)
    assert second.isVisible() and second.theme.dark
    assert second.current_page() == "settings"
    assert ctx.settings.get(THEME) == "dark"
    second.settings_view.theme_combo.setCurrentIndex(
        second.settings_view.theme_combo.findData("light")
    )
    assert session.window is not None and not session.window.theme.dark
    qtbot.addWidget(session.window)


@pytest.mark.parametrize("name", ICONS)
def test_every_icon_renders(qapp: Any, name: str) -> None:
    assert icon_path(name).exists()
    pixmap = render_svg(name, 32, "#123456", 2.0)
    image = pixmap.toImage()
    assert image.width() == 64
    opaque = sum(
        1 for x in range(0, 64, 2) for y in range(0, 64, 2) if image.pixelColor(x, y).alpha() > 0
    )
    assert opaque > 10, f"{name}.svg renders blank"
    assert not themed_icon(name, "#000000").pixmap(QSize(24, 24)).isNull()


def test_both_stylesheets_fill_every_placeholder(qapp: Any) -> None:
    for colors in (LIGHT, DARK):
        assert set(colors) == set(LIGHT)
    for choice in ("light", "dark"):
        sheet = stylesheet(resolve_theme(choice))
        assert "${" not in sheet and "QMainWindow" in sheet


def test_desktop_entry_and_metainfo(require_tool: Any) -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(resources_dir() / "contributor-desk.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"].startswith("contributor-desk")
    assert section["Icon"] == "contributor-desk"
    metainfo = resources_dir() / "dev.contributor_desk.ContributorDesk.metainfo.xml"
    root = ElementTree.parse(metainfo).getroot()
    assert root.findtext("launchable") == "contributor-desk.desktop"
    tool = require_tool("appstreamcli")
    proc = subprocess.run(
        [tool, "validate", "--no-net", str(metainfo)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generated_app_icons_exist() -> None:
    png = resources_dir() / "icons" / "png"
    for size in (16, 32, 48, 256, 512):
        assert (png / f"contributor-desk-{size}.png").stat().st_size > 100
    assert (resources_dir() / "icons" / "contributor-desk.ico").exists()
