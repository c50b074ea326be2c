"""Parallel SHA-256 of scanned files, with progress, cancel, a reuse cache and change detection.

hashlib releases the GIL while it digests a large buffer and so does readinto, so plain threads
keep every core busy; reading into one reused buffer per thread avoids allocating per chunk.
Small files are batched per task so thousands of them do not drown in scheduling overhead.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from app.domain.errors import Cancelled
from app.domain.problems import Problem, Severity
from app.manifest.scan import ScannedFile

MiB = 1024 * 1024
DEFAULT_CHUNK = 4 * MiB
_BATCH_BYTES = 16 * MiB  # small files grouped per task up to this many bytes...
_BATCH_FILES = 256  # ...or this many files
_PROGRESS_BYTES = 32 * MiB
_PROGRESS_SECONDS = 0.1
_POLL_SECONDS = 0.05  # how often the calling thread checks cancel(): well under 0.5 s

CHANGED_MESSAGE = "changed while being read; add it again when it is no longer being written"


@dataclass(frozen=True, slots=True)
class HashedFile:
    scanned: ScannedFile
    sha256: str


@dataclass(slots=True)
class HashResult:
    """Hashes in the order the files were given; files with problems are left out."""

    entries: list[HashedFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bytes_hashed: int = 0
    bytes_from_cache: int = 0


class HashCache(Protocol):
    """Remembers hashes by path; the store layer implements it over SQLite."""

    def lookup(self, files: Sequence[ScannedFile]) -> dict[str, str]:
        """abs path str -> sha256, only where size, mtime_ns and inode all still match."""
        ...

    def store(self, entries: Sequence[HashedFile]) -> None: ...


class MemoryHashCache:
    """An in-process HashCache, for tests and one-off CLI runs."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[int, int, int, str]] = {}

    def lookup(self, files: Sequence[ScannedFile]) -> dict[str, str]:
        found: dict[str, str] = {}
        for f in files:
            row = self._rows.get(str(f.abs_path))
            if row is not None and row[:3] == (f.size, f.mtime_ns, f.inode):
                found[str(f.abs_path)] = row[3]
        return found

    def store(self, entries: Sequence[HashedFile]) -> None:
        for e in entries:
            s = e.scanned
            self._rows[str(s.abs_path)] = (s.size, s.mtime_ns, s.inode, e.sha256)


def hash_file(
    scanned: ScannedFile,
    *,
    buffer: bytearray | None = None,
    stop: threading.Event | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> HashedFile | Problem:
    """Hash one file, or say why its hash cannot be trusted.

    The file must still be the one that was scanned (same inode, size and mtime) before and
    after reading, and exactly `size` bytes must be read; otherwise someone was writing it.
    `on_bytes` is told after every chunk (progress accounting). Raises Cancelled when `stop`
    is set, checked between chunks.
    """
    rel = scanned.rel_path
    buf = buffer if buffer is not None else bytearray(DEFAULT_CHUNK)
    view = memoryview(buf)
    try:
        fd = os.open(scanned.abs_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return Problem(Severity.ERROR, "disappeared before it could be read; add it again", rel)
    except PermissionError:
        return Problem(Severity.ERROR, "cannot be read (permission denied)", rel)
    except OSError as exc:
        return Problem(Severity.ERROR, f"cannot be read ({exc.strerror or exc})", rel)
    try:
        before = os.fstat(fd)
        if (before.st_ino, before.st_size, before.st_mtime_ns) != (
            scanned.inode,
            scanned.size,
            scanned.mtime_ns,
        ):
            return Problem(Severity.ERROR, CHANGED_MESSAGE, rel)
        if scanned.size > len(buf) and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        digest = hashlib.sha256()
        read = 0
        with open(fd, "rb", buffering=0, closefd=False) as fh:
            while True:
                if stop is not None and stop.is_set():
                    raise Cancelled("Hashing was cancelled.")
                n = fh.readinto(view)
                if not n:
                    break
                digest.update(view[:n])
                read += n
                if on_bytes is not None:
                    on_bytes(n)
                if read > scanned.size:
                    break  # growing: no need to read the rest to know it changed
        after = os.fstat(fd)
    except OSError as exc:
        return Problem(Severity.ERROR, f"could not be read to the end ({exc.strerror or exc})", rel)
    finally:
        os.close(fd)
    if read != scanned.size or (after.st_size, after.st_mtime_ns) != (
        scanned.size,
        scanned.mtime_ns,
    ):
        return Problem(Severity.ERROR, CHANGED_MESSAGE, rel)
    return HashedFile(scanned, digest.hexdigest())


class _Counter:
    """Bytes read so far, added to by every worker thread."""

    def __init__(self, start: int) -> None:
        self._lock = threading.Lock()
        self.value = start

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


def hash_files(
    files: Sequence[ScannedFile],
    *,
    cache: HashCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> HashResult:
    """Hash `files` on `workers` threads (default: the CPU count, at most 8).

    `progress(bytes_done, bytes_total)` and `cancel()` are called on the calling thread only,
    so a GUI may pass callables that are not thread-safe. Cached hashes count as done.
    """
    n_workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 2))
    cached = cache.lookup(files) if cache is not None and files else {}
    results: list[HashedFile | Problem | None] = [None] * len(files)
    todo: list[int] = []
    from_cache = 0
    for i, f in enumerate(files):
        sha = cached.get(str(f.abs_path))
        if sha is not None:
            results[i] = HashedFile(f, sha)
            from_cache += f.size
        else:
            todo.append(i)
    total = sum(f.size for f in files)
    counter = _Counter(from_cache)
    stop = threading.Event()
    local = threading.local()

    def run(task: list[int]) -> None:
        buf: bytearray | None = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(chunk_size)
        for i in task:
            if stop.is_set():
                raise Cancelled("Hashing was cancelled.")
            results[i] = hash_file(files[i], buffer=buf, stop=stop, on_bytes=counter.add)

    tasks = _batches(files, todo, chunk_size)
    if tasks:
        _run_tasks(run, tasks, n_workers, stop, counter, total, progress, cancel)
    if progress is not None:
        progress(total, total)

    out = HashResult(bytes_from_cache=from_cache)
    fresh: list[HashedFile] = []
    for i, r in enumerate(results):
        if isinstance(r, HashedFile):
            out.entries.append(r)
            if str(files[i].abs_path) not in cached:
                fresh.append(r)
                out.bytes_hashed += r.scanned.size
        elif isinstance(r, Problem):
            out.problems.append(r)
    if cache is not None and fresh:
        cache.store(fresh)
    return out


def _run_tasks(
    run: Callable[[list[int]], None],
    tasks: list[list[int]],
    n_workers: int,
    stop: threading.Event,
    counter: _Counter,
    total: int,
    progress: Callable[[int, int], None] | None,
    cancel: Callable[[], bool] | None,
) -> None:
    """Run tasks on a pool while the calling thread reports progress and watches cancel()."""
    executor = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="sha256")
    try:
        pending: set[Future[None]] = {executor.submit(run, t) for t in tasks}
        last_time = time.monotonic()
        last_bytes = counter.value
        while pending:
            done, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_EXCEPTION)
            for fut in done:
                fut.result()  # a bug in a worker surfaces here, on the caller's thread
            if cancel is not None and cancel():
                raise Cancelled("Hashing was cancelled.")
            if progress is not None and pending:
                now, value = time.monotonic(), counter.value
                if now - last_time >= _PROGRESS_SECONDS or value - last_bytes >= _PROGRESS_BYTES:
                    progress(value, total)
                    last_time, last_bytes = now, value
    except BaseException:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _batches(files: Sequence[ScannedFile], todo: list[int], chunk_size: int) -> list[list[int]]:
    """Big files alone, small ones grouped; biggest first so the last task is a short one."""
    tasks: list[tuple[int, list[int]]] = []
    group: list[int] = []
    group_bytes = 0
    for i in todo:
        size = files[i].size
        if size >= chunk_size:
            tasks.append((size, [i]))
            continue
        group.append(i)
        group_bytes += size
        if group_bytes >= _BATCH_BYTES or len(group) >= _BATCH_FILES:
            tasks.append((group_bytes, group))
            group, group_bytes = [], 0
    if group:
        tasks.append((group_bytes, group))
    tasks.sort(key=lambda t: -t[0])
    return [t[1] for t in tasks]
