"""Content-addressed blob storage behind a small interface (filesystem now, S3 later).

A blob becomes visible only by an atomic rename of a fully written, fsynced file, so a reader
never sees a partial blob, whatever happens during the upload.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol


class BlobStore(Protocol):
    """What the registry needs from a blob store; an S3-compatible store can implement it."""

    def has(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def put_from_file(self, tmp_path: Path, sha256: str, size: int) -> None:
        """Take ownership of a verified temp file and make it visible as blob `sha256`."""
        ...


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore:
    """Blobs under root/ab/cd/<sha256>; temp files live in root/.tmp on the same filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a lowercase hex sha256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def put_from_file(self, tmp_path: Path, sha256: str, size: int) -> None:
        dest = self.path_for(sha256)
        if tmp_path.stat().st_size != size:
            raise ValueError("temp file size does not match the declared size")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            tmp_path.unlink(missing_ok=True)
            return
        with tmp_path.open("rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(tmp_path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Different filesystem: copy to a temp name next to the destination, then rename.
            staging = dest.with_name(dest.name + ".partial")
            with tmp_path.open("rb") as src, staging.open("wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(staging, dest)
            tmp_path.unlink(missing_ok=True)
        fsync_dir(dest.parent)
