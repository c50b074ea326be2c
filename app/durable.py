"""Bulk work done durably, for the desktop app and the registry alike: atomic file writes
(temp file + fsync + rename + fsync of the folder), the fsyncs they are made of, and the
garbage collector paused around bulk batches."""

from __future__ import annotations

import gc
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_BINARY = getattr(os, "O_BINARY", 0)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX; Windows cannot open a folder, NTFS journals it)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file written elsewhere (e.g. by a streaming upload) to the disk."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_synced(path: Path, data: bytes | memoryview, *, mode: int = 0o666) -> None:
    """Create `path` with `data` and fsync it; for files in a folder that is itself published
    by one rename (a BagIt bag). `mode` is filtered by the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _BINARY, mode)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, data: bytes | memoryview, *, mode: int = 0o666, tmp: Path | None = None
) -> None:
    """Replace `path` with `data` so that a reader or a crash sees the old file or the whole
    new one: written to a temp file (`tmp`, default a fresh hidden name beside `path`), fsynced,
    renamed over `path`, and the folder fsynced. `mode` (e.g. 0o600 for private files) is
    filtered by the umask; the temp file is removed if anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, mode)
    try:
        try:
            if hasattr(os, "fchmod") and mode & 0o077 == 0:
                os.fchmod(fd, mode)  # private from the first byte, whatever the umask
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is built and written.

    Bulk work allocates tens of thousands of containers (row tuples, small lists and dicts,
    none in a reference cycle): the collections their allocation triggers, full ones over the
    whole heap included, cost a large share of the Python time of usage ingestion at the
    registry and of an upload-queue snapshot of 10,000 jobs (bench/README.md). Reference
    counting still frees everything as usual. Keep the paused stretch bounded (one batch, one
    request): cyclic garbage made meanwhile waits for the next collection. The collector is
    only switched back on if it was on (so nested or concurrent batches cannot turn on a
    collector someone else switched off; at worst one runs earlier than it would have).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
