"""`make run` users quit with Ctrl+C; session managers send SIGTERM: both quit cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_terminal_signals_quit_the_gui_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--data-dir", str(tmp_path / "data")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The window is up once the catalogue database exists and settle time has passed.
    deadline = time.monotonic() + 60
    while not (tmp_path / "data" / "catalogue.sqlite3").exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the GUI did not start"
        time.sleep(0.1)
    time.sleep(2)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{sig.name} did not quit the GUI") from None
    assert proc.returncode == 0, err
    assert "Traceback" not in err
