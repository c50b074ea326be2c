"""Unix-only OS calls behind one door: the fast path where the platform has it, a portable
fallback where it does not (Windows, macOS), so the app and its embedded demo registry run
everywhere. tests/unit/domain/test_portable.py runs every fallback on Linux by hiding the
fast path; tests/unit/test_portable_calls.py fails on a new unguarded Unix-only call.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# pread/pwrite fallbacks move the shared file position: one at a time, position restored.
_seek_lock = threading.Lock()


def pread(fd: int, n: int, offset: int) -> bytes:
    """Up to `n` bytes at `offset`, leaving the file position where it was."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    with _seek_lock:
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.read(fd, n)
        finally:
            os.lseek(fd, pos, os.SEEK_SET)


def pwrite(fd: int, data: Any, offset: int) -> int:
    """Write (part of) `data` at `offset`; returns the count written, like os.pwrite."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    with _seek_lock:
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            return os.write(fd, data)
        finally:
            os.lseek(fd, pos, os.SEEK_SET)


def writev(fd: int, buffers: Sequence[Any]) -> int:
    """Gathered write at the file position; may write less than all (callers loop)."""
    if hasattr(os, "writev"):
        return os.writev(fd, buffers)
    return os.write(fd, buffers[0]) if buffers else 0


def sync_data(path: Path) -> None:
    """Make a file's data durable (fdatasync; fsync where there is none). FileNotFoundError
    when the file is gone."""
    if hasattr(os, "fdatasync"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return
    # Windows flushes only through a handle open for writing.
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def advise_sequential(fd: int, offset: int = 0, length: int = 0) -> None:
    """Tell the kernel the range will be read once, front to back (a hint: no-op elsewhere)."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_SEQUENTIAL)


def make_private(fd: int) -> None:
    """Mode 0600 on an open file (POSIX); elsewhere the user's profile folder protects it."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)


def link_or_copy(src: Path, dest: Path) -> bool:
    """Hard-link `dest` to `src`, or copy it (and fsync the copy) where links are impossible:
    no os.link, another filesystem, FAT/exFAT, a share, a link limit. True when linked."""
    if hasattr(os, "link"):
        try:
            os.link(src, dest, follow_symlinks=True)
            return True
        except (FileExistsError, FileNotFoundError):
            raise
        except OSError:
            pass
    with open(src, "rb") as fin, open(dest, "xb") as fout:  # like a link: never overwrites
        shutil.copyfileobj(fin, fout, 1024 * 1024)
        fout.flush()
        os.fsync(fout.fileno())
    return False


def parent_death_hook() -> Callable[[], None] | None:
    """A preexec_fn that has Linux send the child SIGTERM when its parent dies (however it
    dies), or None where there is no prctl: there the parent stops the child on exit."""
    if not sys.platform.startswith("linux"):
        return None
    return _die_with_parent


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
