"""Started without a display, the GUI says so and exits; the command line keeps working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.ui.devtools.display_check import display_problem

NO_DISPLAY = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")


@pytest.mark.parametrize(
    ("env", "platform", "frozen", "problem"),
    [
        ({}, "linux", False, "neither DISPLAY nor WAYLAND_DISPLAY"),
        ({"DISPLAY": ":0"}, "linux", True, None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False, None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True, "XWayland"),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True, None),
        ({}, "win32", True, None),
        ({}, "darwin", True, None),
    ],
)
def test_display_problem(
    env: dict[str, str], platform: str, frozen: bool, problem: str | None
) -> None:
    found = display_problem(env, platform, frozen)
    assert (found is None) == (problem is None)
    if problem is not None:
        assert found is not None and problem in found


def test_the_gui_without_a_display_exits_with_a_sentence_not_a_core_dump(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in NO_DISPLAY}
    env["CONTRIBUTOR_DESK_DATA_DIR"] = str(tmp_path)
    gui = subprocess.run(
        [sys.executable, "-m", "app"], capture_output=True, text=True, env=env, timeout=120
    )
    assert gui.returncode == 2, gui.stderr
    assert "the window cannot open: no graphical display" in gui.stderr
    assert "Aborted" not in gui.stderr and "qt.qpa" not in gui.stderr
    cli = subprocess.run(
        [sys.executable, "-m", "app", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert cli.returncode == 0, cli.stderr
