"""Every portable fallback of app.domain.portable, run on Linux by hiding the fast path (the
way Windows or macOS lack it), checked against what the fast path does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.domain import portable


def _hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.delattr(os, name, raising=False)
        assert not hasattr(os, name)


@pytest.fixture(params=["fast", "fallback"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fallback":
        _hide(monkeypatch, "pread", "pwrite", "writev", "fdatasync", "posix_fadvise", "fchmod")
        _hide(monkeypatch, "link")
    return str(request.param)


def test_pread_and_pwrite_leave_the_file_position_alone(mode: str, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDWR)
    try:
        os.lseek(fd, 3, os.SEEK_SET)
        assert portable.pread(fd, 4, 5) == b"5678"
        assert portable.pread(fd, 100, 8) == b"89"  # short at the end, like os.pread
        assert portable.pwrite(fd, memoryview(b"ab"), 1) == 2
        assert os.lseek(fd, 0, os.SEEK_CUR) == 3
        assert portable.pwrite(fd, b"XY", 12) == 2  # past the end: a hole, like os.pwrite
    finally:
        os.close(fd)
    assert path.read_bytes() == b"0ab3456789\0\0XY"


def test_writev_writes_all_buffers_when_the_caller_loops(mode: str, tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    views = [memoryview(b"abc"), memoryview(b""), memoryview(b"defg")]
    try:
        while views:
            n = portable.writev(fd, views)
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]
    finally:
        os.close(fd)
    assert path.read_bytes() == b"abcdefg"


def test_sync_data_flushes_and_says_when_the_file_is_gone(mode: str, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    portable.sync_data(path)
    with pytest.raises(FileNotFoundError):
        portable.sync_data(tmp_path / "gone")


def test_hints_and_modes_are_harmless_without_the_call(mode: str, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    path.chmod(0o644)
    fd = os.open(path, os.O_RDWR)
    try:
        portable.advise_sequential(fd)
        portable.make_private(fd)
    finally:
        os.close(fd)
    assert path.stat().st_mode & 0o777 == (0o600 if mode == "fast" else 0o644)


def test_link_or_copy_copies_without_links(mode: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"payload")
    linked = portable.link_or_copy(src, tmp_path / "dest")
    assert (tmp_path / "dest").read_bytes() == b"payload"
    assert linked == (mode == "fast")
    assert ((tmp_path / "dest").stat().st_ino == src.stat().st_ino) == linked
    with pytest.raises(FileExistsError):
        portable.link_or_copy(src, tmp_path / "dest")


def test_link_or_copy_copies_when_the_filesystem_refuses_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise OSError(1, "Incorrect function")  # what FAT or a share answers on Windows

    monkeypatch.setattr(os, "link", refuse)
    src = tmp_path / "src"
    src.write_bytes(b"payload")
    assert portable.link_or_copy(src, tmp_path / "dest") is False
    assert (tmp_path / "dest").read_bytes() == b"payload"


def test_the_parent_death_hook_is_linux_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert portable.parent_death_hook() is not None
    for other in ("win32", "darwin"):
        monkeypatch.setattr(sys, "platform", other)
        assert portable.parent_death_hook() is None
