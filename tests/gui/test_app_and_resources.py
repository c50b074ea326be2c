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
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QRadioButton,
    QStyle,
    QStyleOptionButton,
    QWidget,
)

from app.ui.resources import icon_path, render_svg, resources_dir, themed_icon
from app.ui.theme import DARK, LIGHT, apply_theme, palette, resolve_theme, stylesheet

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


def _luminance(c: QColor) -> float:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())


def _contrast(a: QColor, b: QColor) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("choice", ["light", "dark"])
def test_text_on_a_failure_banner_is_readable(qapp: Any, choice: str) -> None:
    """The Rewards page's failed-verification banner (danger background) keeps its text at
    4.5:1 or more in both themes (the dark theme's light red takes dark text)."""
    theme = resolve_theme(choice)
    ratio = _contrast(theme.color("on_danger"), theme.color("danger"))
    assert ratio >= 4.5, f"{choice}: text on danger is {ratio:.2f}:1"


@pytest.mark.parametrize("choice", ["light", "dark"])
def test_disabled_text_is_readable_yet_dimmer_than_muted(qapp: Any, choice: str) -> None:
    """Disabled labels (radio buttons, check boxes, buttons) reach 3:1 against every background
    they sit on, and stay dimmer than the muted (enabled, secondary) text so they still read
    as disabled."""
    theme = resolve_theme(choice)
    pal = palette(theme)
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text):
        assert pal.color(disabled, role) == theme.color("disabled")
    for bg in ("bg", "surface", "sidebar", "hover"):
        ratio = _contrast(theme.color("disabled"), theme.color(bg))
        assert ratio >= 3.0, f"{choice}: disabled on {bg} is {ratio:.2f}:1"
        assert ratio < _contrast(theme.color("muted"), theme.color(bg))


@pytest.mark.parametrize("choice", ["light", "dark"])
@pytest.mark.parametrize(
    ("kind", "checked"),
    [(QRadioButton, True), (QRadioButton, False), (QCheckBox, True), (QCheckBox, False)],
)
def test_a_disabled_indicator_shows_its_mark_or_ring(
    qtbot: Any,
    qapp: Any,
    choice: str,
    kind: type[QRadioButton] | type[QCheckBox],
    checked: bool,
) -> None:
    """Drawn with the theme as the app applies it: the mark of a disabled checked radio button
    or check box, and the ring of an unchecked one, stand out from the window
    background as their labels do (3:1)."""
    theme = apply_theme(qapp, choice)
    try:
        box = QWidget()
        button = kind("Create a new identity", box)
        button.setChecked(checked)
        button.setEnabled(False)
        box.resize(240, 40)
        qtbot.addWidget(box)
        box.show()
        qtbot.waitExposed(box)
        image = box.grab().toImage()
        opt = QStyleOptionButton()
        button.initStyleOption(opt)  # type: ignore[arg-type]
        element = (
            QStyle.SubElement.SE_RadioButtonIndicator
            if kind is QRadioButton
            else QStyle.SubElement.SE_CheckBoxIndicator
        )
        rect = button.style().subElementRect(element, opt, button).translated(button.pos())
        background = theme.color("bg")
        assert image.pixelColor(rect.right() + 40, 1) == background
        best = max(
            _contrast(image.pixelColor(x, y), background)
            for x in range(rect.left(), rect.right() + 1)
            for y in range(rect.top(), rect.bottom() + 1)
        )
        assert best >= 3.0, f"{choice} {kind.__name__} checked={checked}: {best:.2f}:1"
    finally:
        apply_theme(qapp, "light")  # as the theme fixture leaves the app
