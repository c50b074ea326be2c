"""Fixtures for format detection: copies of the sample datasets and a read-denial helper."""

from __future__ import annotations

import builtins
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "formats"


@pytest.fixture
def samples() -> Path:
    """The read-only sample datasets (written by Datumaro, HF datasets, pyarrow)."""
    return SAMPLES


@pytest.fixture
def sample_copy(tmp_path: Path) -> Callable[[str], Path]:
    """Copy one sample dataset into tmp_path so a test may damage it."""

    def _copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(SAMPLES / name, target)
        return target

    return _copy


@pytest.fixture
def deny_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a file or folder unreadable.

    As a normal user this is a real chmod 000. As root (CI containers) chmod does not stop
    reads, so `open` and `os.scandir` are made to raise PermissionError for exactly the
    denied paths, as the kernel would for anyone else.
    """
    denied: set[str] = set()
    chmodded: list[tuple[Path, int]] = []
    if os.geteuid() == 0:
        real_open = builtins.open
        real_scandir = os.scandir

        def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, str | os.PathLike) and os.path.abspath(file) in denied:
                raise PermissionError(13, "Permission denied", os.fspath(file))
            return real_open(file, *args, **kwargs)

        def fake_scandir(path: Any = ".") -> Any:
            if isinstance(path, str | os.PathLike) and os.path.abspath(path) in denied:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(os, "scandir", fake_scandir)

    def _deny(path: Path) -> None:
        if os.geteuid() == 0:
            denied.add(os.path.abspath(path))
        else:
            chmodded.append((path, stat.S_IMODE(path.stat().st_mode)))
            path.chmod(0)

    yield _deny
    for path, mode in chmodded:
        path.chmod(mode)
