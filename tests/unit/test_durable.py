"""app.durable.atomic_write: a reader or a crash sees the old file or the whole new one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app import durable


def test_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    durable.atomic_write(target, b"one")
    durable.atomic_write(target, memoryview(b"two"))
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_private_mode_and_umask_mode(tmp_path: Path) -> None:
    durable.atomic_write(tmp_path / "key", b"k", mode=0o600)
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600
    old = os.umask(0o022)
    try:
        durable.atomic_write(tmp_path / "pub", b"p")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "pub").stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    durable.atomic_write(target, b"old")

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable.os, "fsync", broken)
    with pytest.raises(OSError):
        durable.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_the_folder_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []
    monkeypatch.setattr(durable, "fsync_dir", lambda p: seen.append(p))
    durable.atomic_write(tmp_path / "f", b"x")
    assert seen == [tmp_path]


def test_an_explicit_temp_path_is_used(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    durable.atomic_write(tmp_path / "out", b"x", tmp=tmp_path / "tmp" / ".out.partial")
    assert (tmp_path / "out").read_bytes() == b"x"
    assert not list((tmp_path / "tmp").iterdir())
