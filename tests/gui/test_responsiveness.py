"""The GUI thread is never blocked > 100 ms while a large file hashes in the background.

A QTimer beats every 10 ms on the GUI thread and records the gaps. The machine's own
scheduling noise is measured first with the same heartbeat and no work: on an overloaded
machine (several test suites sharing two cores) even an idle event loop can miss 100 ms, and
that is not the app blocking. The bound is 100 ms, or the idle noise + 20 ms when that is
higher; both figures are printed.

Objects left by earlier tests in this process are frozen out of the cyclic GC first
(gc.freeze, as the app does after startup): a full collection over a whole test session's
heap is not the app blocking its GUI thread.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from app.ui.main_window import MainWindow

HEARTBEAT_MS = 10
MAX_GAP_MS = 100
NOISE_MARGIN_MS = 20
SIZE = 1 << 30  # 1 GiB sparse file: zeros hash quickly, but every byte is still read


class Heartbeat:
    def __init__(self, active: Any = lambda: True) -> None:
        self.gaps: list[int] = []
        self._active = active
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(self._beat)
        self._last = 0

    def start(self) -> None:
        self._clock.start()
        self._last = 0
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _beat(self) -> None:
        now = self._clock.elapsed()
        if self._active():
            self.gaps.append(now - self._last)
        self._last = now


@pytest.mark.slow
def test_gui_heartbeat_while_hashing_1gb(qtbot: Any, window: MainWindow, tmp_path: Path) -> None:
    folder = tmp_path / "huge"
    folder.mkdir()
    with (folder / "huge.bin").open("wb") as fh:
        fh.truncate(SIZE)
    (folder / "readme.txt").write_text("a large sparse file\n", "utf-8")
    dialog = window.open_import([folder])
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=15_000)

    gc.collect()
    gc.freeze()
    try:
        _measure(qtbot, dialog)
    finally:
        gc.unfreeze()


def _measure(qtbot: Any, dialog: Any) -> None:
    idle = Heartbeat()
    idle.start()
    qtbot.wait(3000)
    idle.stop()
    noise = max(idle.gaps)

    busy = Heartbeat(active=lambda: dialog.hashing)  # not the catalogue refresh afterwards
    busy.start()
    dialog.start_add()
    qtbot.waitUntil(lambda: not dialog.hashing, timeout=240_000)
    busy.stop()
    assert dialog.result_item is not None, dialog.status.text()
    assert dialog.result_item.total_size > SIZE
    assert len(busy.gaps) > 10, "the heartbeat never ran"
    worst = max(busy.gaps)
    allowed = max(MAX_GAP_MS, noise + NOISE_MARGIN_MS)
    print(f"\nheartbeat: worst gap {worst} ms while hashing 1 GiB; idle noise {noise} ms")
    slow = [(i, g) for i, g in enumerate(busy.gaps) if g > allowed]
    assert worst <= allowed, f"GUI blocked {worst} ms (idle noise {noise} ms): {slow}"
