"""Before Qt starts: is there a display to open a window on? Without one Qt aborts the process
with a core dump and a plugin list; the user gets a sentence and the way out instead."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from app.domain.errors import KnownError


class NoDisplayError(KnownError):
    """The GUI was asked for where no graphical session is reachable (the CLI still works)."""

    exit_code = 2


def display_problem(
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    frozen: bool | None = None,
) -> str | None:
    """Why no window can open here, or None. Windows and macOS always have their own."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    if platform in ("win32", "darwin") or env.get("QT_QPA_PLATFORM"):
        return None  # a platform chosen on purpose (offscreen, vnc...) is Qt's to check
    if env.get("DISPLAY"):
        return None
    if env.get("WAYLAND_DISPLAY"):
        # The bundle carries Qt's X11 platform only: on Wayland it runs through XWayland.
        return None if not frozen else "XWayland is not running (DISPLAY is not set)"
    return "no graphical display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def require_display() -> None:
    problem = display_problem()
    if problem is not None:
        raise NoDisplayError(
            f"the window cannot open: {problem}",
            hint="the command line works without a display (contributor-desk --help); "
            "for a headless check run QT_QPA_PLATFORM=offscreen contributor-desk --self-test",
        )
