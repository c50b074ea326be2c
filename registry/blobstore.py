"""Content-addressed blob storage behind a small interface (filesystem now, S3 later).

A blob becomes visible only by an atomic rename of a fully written, fsynced file, so a reader
never sees a partial blob, whatever happens during the upload. Large blobs (tus) are one file
each under root/ab/cd/<sha256>; batches of small blobs are written as one pack file each
(registry/packstore.py), because a file per 4 KB blob costs more CPU than the upload itself.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol

from app.durable import fsync_dir, fsync_file
from app.manifest.canonical import is_sha256_hex
from registry.packstore import CorruptBlobError, PackStore

__all__ = [
    "BlobStore",
    "BlobStoreBase",
    "CorruptBlobError",
    "FileBlobStore",
    "fsync_dir",
]

PACK_MIN_BLOBS = 16  # fewer blobs than this in one put_many are stored as loose files
PACK_MAX_BLOB = 1024 * 1024  # larger blobs are always loose files
_PARALLEL_STATS = 256  # loose blobs from which sizes() stats them on threads


def _check(sha256: str) -> None:
    if not is_sha256_hex(sha256):
        raise ValueError("not a lowercase hex sha256")


class BlobStore(Protocol):
    """What the registry needs from a blob store; an S3-compatible store can implement it
    (subclass BlobStoreBase for generic put_many/sizes built on the single-blob methods)."""

    def has(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None: ...

    def sizes(self, shas: Sequence[str]) -> dict[str, int | None]:
        """The size of each blob (None = absent), in as few round trips as the store allows."""
        ...

    def open(self, sha256: str) -> BinaryIO: ...

    def put_from_file(self, tmp_path: Path, sha256: str, size: int) -> None:
        """Take ownership of a verified temp file and make it visible as blob `sha256`."""
        ...

    def put_many(self, items: Sequence[tuple[str, int, bytes]]) -> None:
        """Make verified in-memory blobs [(sha256, size, bytes)] durable and visible, each
        complete or absent; when it returns, all are durable."""
        ...


class BlobStoreBase:
    """Generic put_many/sizes from put_from_file/size, for stores without bulk operations."""

    tmp_dir: Path = Path(tempfile.gettempdir())

    def size(self, sha256: str) -> int | None:
        raise NotImplementedError

    def put_from_file(self, tmp_path: Path, sha256: str, size: int) -> None:
        raise NotImplementedError

    def sizes(self, shas: Sequence[str]) -> dict[str, int | None]:
        return {sha: self.size(sha) for sha in shas}

    def put_many(self, items: Sequence[tuple[str, int, bytes]]) -> None:
        for sha, size, data in items:
            if len(data) != size:
                raise ValueError("blob bytes do not match the declared size")
            tmp = _write_tmp(self.tmp_dir / f"put-{secrets.token_hex(8)}", data)
            self.put_from_file(tmp, sha, size)


def _write_tmp(path: Path, data: bytes) -> Path:
    """A new file holding `data` (raw os calls: open() adds an fstat and an ioctl)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return path


class FileBlobStore(BlobStoreBase):
    """Blobs under root/ab/cd/<sha256> or in root/packs/; temp files in root/.tmp on the same
    filesystem. Call close() when done (tests); the index connection is closed on GC too."""

    def __init__(self, root: Path, *, pack_min: int = PACK_MIN_BLOBS) -> None:
        self.root = root
        self.tmp_dir = root / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.pack_min = pack_min
        self.packs = PackStore(root, self.tmp_dir)

    def close(self) -> None:
        self.packs.close()

    def path_for(self, sha256: str) -> Path:
        """Where the loose file of a blob lives (packed blobs have none)."""
        _check(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def _loose_size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def has(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def size(self, sha256: str) -> int | None:
        loose = self._loose_size(sha256)
        if loose is not None:
            return loose
        return self.packs.sizes([sha256]).get(sha256)

    def sizes(self, shas: Sequence[str]) -> dict[str, int | None]:
        """Packed blobs by index queries (one per 500, a stat per pack); the rest by a stat
        each, on a few threads when there are many (stats release the GIL). Names are checked
        where they become paths (path_for); in queries they are only parameters."""
        out: dict[str, int | None] = dict(self.packs.sizes(shas))
        rest = [sha for sha in dict.fromkeys(shas) if sha not in out]
        if len(rest) < _PARALLEL_STATS:
            out.update((sha, self._loose_size(sha)) for sha in rest)
        else:
            with ThreadPoolExecutor(4, thread_name_prefix="blob-stat") as pool:
                out.update(zip(rest, pool.map(self._loose_size, rest, chunksize=256), strict=True))
        return out

    def open(self, sha256: str) -> BinaryIO:
        """The blob's bytes; a packed blob is read whole (packed blobs are small) and checked
        against its sha256, so a damaged pack raises CorruptBlobError instead of serving."""
        try:
            return self.path_for(sha256).open("rb")
        except FileNotFoundError:
            data = self.packs.read(sha256)
            if data is None:
                raise
            return io.BytesIO(data)

    def put_many(self, items: Sequence[tuple[str, int, bytes]]) -> None:
        """Small blobs of a batch go into one pack (one file, one fsync, one rename); few or
        large blobs become loose files."""
        for sha, size, data in items:
            _check(sha)
            if len(data) != size:
                raise ValueError("blob bytes do not match the declared size")
        small = [(sha, data) for sha, size, data in items if size <= PACK_MAX_BLOB]
        if len(small) < self.pack_min:
            small = []
        packed = {sha for sha, _ in small}
        self.packs.write(small)
        super().put_many([item for item in items if item[0] not in packed])

    def put_from_file(self, tmp_path: Path, sha256: str, size: int) -> None:
        dest = self.path_for(sha256)
        if tmp_path.stat().st_size != size:
            raise ValueError("temp file size does not match the declared size")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            tmp_path.unlink(missing_ok=True)
            return
        fsync_file(tmp_path)
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
