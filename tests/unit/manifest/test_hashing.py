"""Parallel hashing must equal hashlib, reuse the cache, cancel fast and catch moving files."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

import pytest

from app.domain.errors import Cancelled
from app.domain.problems import Problem
from app.manifest.hashing import (
    CHANGED_MESSAGE,
    HashedFile,
    MemoryHashCache,
    hash_file,
    hash_files,
)
from app.manifest.scan import ScannedFile, scan_paths

CHUNK = 64 * 1024  # small chunks so "bigger than a chunk" stays cheap to test


def _tree(root: Path, sizes: list[int], seed: int = 7) -> dict[str, bytes]:
    rng = random.Random(seed)
    bodies: dict[str, bytes] = {}
    for i, size in enumerate(sizes):
        rel = f"d{i % 3}/f{i}.bin"
        body = rng.randbytes(size)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
        bodies[rel] = body
    return bodies


def test_matches_hashlib_for_many_sizes(tmp_path: Path) -> None:
    rng = random.Random(1)
    sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] + [
        rng.randrange(0, 5 * CHUNK) for _ in range(300)
    ]
    bodies = _tree(tmp_path, sizes)
    files = scan_paths([tmp_path]).files
    calls: list[tuple[int, int]] = []
    result = hash_files(
        files, workers=2, chunk_size=CHUNK, progress=lambda d, t: calls.append((d, t))
    )
    assert result.problems == []
    got = {e.scanned.rel_path: e.sha256 for e in result.entries}
    assert got == {rel: hashlib.sha256(b).hexdigest() for rel, b in bodies.items()}
    assert [e.scanned for e in result.entries] == files  # input order kept
    total = sum(sizes)
    assert result.bytes_hashed == total and result.bytes_from_cache == 0
    assert calls[-1] == (total, total)
    assert all(d <= t == total for d, t in calls)


def test_cache_reuse_and_touch_rehashes_only_that_file(tmp_path: Path) -> None:
    _tree(tmp_path, [1000, 2000, 3000, 0])
    cache = MemoryHashCache()
    first = hash_files(scan_paths([tmp_path]).files, cache=cache)
    assert first.bytes_hashed == 6000

    second = hash_files(scan_paths([tmp_path]).files, cache=cache)
    assert second.bytes_hashed == 0
    assert second.bytes_from_cache == 6000
    assert second.entries == first.entries

    touched = tmp_path / "d1" / "f1.bin"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = hash_files(scan_paths([tmp_path]).files, cache=cache)
    assert third.bytes_hashed == 2000
    assert third.bytes_from_cache == 4000
    assert {e.sha256 for e in third.entries} == {e.sha256 for e in first.entries}


def test_cache_lookup_requires_same_inode(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    cache = MemoryHashCache()
    (scanned,) = scan_paths([tmp_path]).files
    cache.store([HashedFile(scanned, "0" * 64)])
    moved = ScannedFile(scanned.abs_path, scanned.rel_path, 3, scanned.mtime_ns, scanned.inode + 1)
    assert cache.lookup([scanned]) == {str(f): "0" * 64}
    assert cache.lookup([moved]) == {}


def test_cancel_raises_promptly(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(4 * 1024**3)  # sparse 4 GiB: seconds of hashing, no disk used
    files = scan_paths([tmp_path]).files
    started = time.monotonic()
    deadline = started + 0.2

    with pytest.raises(Cancelled):
        hash_files(files, cancel=lambda: time.monotonic() > deadline, chunk_size=1024 * 1024)
    assert time.monotonic() - deadline < 0.5
    assert not [t for t in threading.enumerate() if t.name.startswith("sha256")]


def test_file_changed_after_scan_is_excluded(tmp_path: Path) -> None:
    _tree(tmp_path, [100, 200])
    files = scan_paths([tmp_path]).files
    with open(files[0].abs_path, "ab") as fh:
        fh.write(b"more")
    cache = MemoryHashCache()
    result = hash_files(files, cache=cache)
    assert [e.scanned.rel_path for e in result.entries] == [files[1].rel_path]
    assert result.problems == [
        Problem(result.problems[0].severity, CHANGED_MESSAGE, files[0].rel_path)
    ]
    assert result.problems[0].severity == "error"
    assert cache.lookup(files) == {str(files[1].abs_path): result.entries[0].sha256}


@pytest.mark.parametrize("change", ["append", "overwrite-same-size"])
def test_file_changing_while_being_read_is_detected(tmp_path: Path, change: str) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(os.urandom(4 * CHUNK))
    (scanned,) = scan_paths([tmp_path]).files
    chunks = 0

    def writer(_n: int) -> None:
        # Runs after the first chunk was hashed: a real second writer touching the file.
        nonlocal chunks
        chunks += 1
        if chunks == 1:
            if change == "append":
                with open(path, "ab") as fh:
                    fh.write(b"new line\n")
            else:
                with open(path, "r+b") as fh:
                    fh.seek(3 * CHUNK)
                    fh.write(b"X" * 10)
                st = os.stat(path)
                os.utime(path, ns=(st.st_atime_ns, scanned.mtime_ns + 1))

    result = hash_file(scanned, buffer=bytearray(CHUNK), on_bytes=writer)
    assert isinstance(result, Problem)
    assert result.message == CHANGED_MESSAGE
    assert result.path == "growing.log"
    assert chunks >= 2


def test_vanished_and_unreadable_files_are_problems(tmp_path: Path) -> None:
    _tree(tmp_path, [10, 20, 30])
    files = scan_paths([tmp_path]).files
    files[0].abs_path.unlink()
    directory_instead = ScannedFile(tmp_path / "d0", "d0", 0, 0, 0)
    result = hash_files([*files, directory_instead])
    assert len(result.entries) == 2
    by_path = {p.path: p.message for p in result.problems}
    assert "disappeared" in by_path[files[0].rel_path]
    assert "d0" in by_path


def test_file_unreadable_at_hash_time_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path, [10, 20])
    files = scan_paths([tmp_path]).files
    locked = str(files[0].abs_path)
    if os.geteuid() == 0:
        # Root ignores file modes: fail exactly this open the way it fails for a normal user.
        real_open = os.open

        def fake_open(path: str, flags: int, *args: int, **kwargs: object) -> int:
            if os.fspath(path) == locked:
                raise PermissionError(13, "Permission denied", locked)
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", fake_open)
    else:
        os.chmod(locked, 0)
    result = hash_files(files)
    assert [e.scanned for e in result.entries] == files[1:]
    assert [(p.path, p.message) for p in result.problems] == [
        (files[0].rel_path, "cannot be read (permission denied)")
    ]
