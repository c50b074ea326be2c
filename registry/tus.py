"""Storage side of tus uploads: partial files, live upload state, offsets and completion.

Invariants that make uploads resumable after a crash of either side:
- `uploads.offset` in the database is the *durable* offset: it is written only after the bytes
  before it are fdatasynced to the partial file (`flush`), so after a crash of the process or
  of the whole machine it never exceeds what the file really holds;
- the live process keeps each upload's acknowledged offset in memory (`LiveUpload`): a PATCH is
  answered once its bytes are written (page cache), and made durable by the next PATCH (in
  parallel with receiving that PATCH's body), by any HEAD (which flushes before answering, so a
  HEAD never reports bytes that are not durably stored), or by completion. A kill -9 of the
  server keeps the page cache; after a power loss the durable offset is still truthful;
- a fresh process starts from the durable offset and truncates the partial file to it before
  writing (drops bytes that were never made durable or never confirmed);
- a PATCH owns the live upload while it runs (`busy`, set and tested without an await in
  between on the one event loop: one server process per blob directory), so two concurrent
  PATCHes can never both append; the loser gets 409;
- a blob becomes visible only by FileBlobStore.put_from_file (fsync + atomic rename), after the
  whole-blob sha256 matched.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hashlib
import mmap
import os
import queue
import secrets
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.domain import portable
from registry.auth import as_utc
from registry.blobstore import BlobStore
from registry.db.models import Blob, Upload

HASH_CHUNK = 8 * 1024 * 1024
# Upload-Length and Upload-Offset: ASCII digits only, at most this many (a signed 64-bit int).
MAX_UINT_DIGITS = 19


def parse_uint(header: str | None) -> int | None:
    """A tus size or offset header: ASCII digits only (str.isdigit() also accepts '²' and
    other Unicode digits that int() refuses), bounded in length; None if it is not one."""
    if not header or len(header) > MAX_UINT_DIGITS or not header.isascii() or not header.isdigit():
        return None
    return int(header)


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64value` pairs (value optional)."""
    out: dict[str, str] = {}
    if not header:
        return out
    for part in header.split(","):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition(" ")
        if not key or key in out:
            raise ValueError(f"bad or duplicate metadata key {key!r}")
        if not key.isascii() or not key.isprintable():
            raise ValueError(f"metadata key {key!r} is not printable ASCII")
        try:
            text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"metadata {key!r} is not base64 of UTF-8") from exc
        if "\x00" in text:
            raise ValueError(f"metadata {key!r} contains a NUL character")
        out[key] = text
    return out


def encode_metadata(meta: dict[str, str]) -> str:
    """The Upload-Metadata header for HEAD answers (tus: echo what creation received)."""
    return ",".join(
        f"{k} {base64.b64encode(v.encode('utf-8')).decode('ascii')}" for k, v in meta.items()
    )


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`; algorithms sha256 and sha1."""
    if header is None:
        return None
    alg, _, value = header.strip().partition(" ")
    alg = alg.lower()
    if alg not in ("sha256", "sha1"):
        raise ValueError(f"unsupported checksum algorithm {alg!r}")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError("checksum is not base64") from exc
    if len(digest) != hashlib.new(alg).digest_size:
        raise ValueError("checksum has the wrong length for its algorithm")
    return alg, digest


def partial_path(uploads_dir: Path, upload_id: str) -> Path:
    return uploads_dir / f"{upload_id}.part"


def new_upload_id() -> str:
    return secrets.token_hex(16)


def is_expired(upload: Upload, now: datetime | None = None) -> bool:
    return upload.completed_at is None and as_utc(upload.expires_at) <= (now or datetime.now(UTC))


@dataclass
class LiveUpload:
    """What the serving process knows about an unfinished upload between its requests.

    Touched only on the event loop (PATCH/HEAD/DELETE handlers), so `busy` is a real mutex:
    it is tested and set with no await in between.
    """

    id: str
    owner: str
    length: int
    expires_at: datetime
    path: Path
    offset: int  # acknowledged to the client: written to the partial file (maybe not synced)
    durable: int  # fdatasynced and recorded in uploads.offset
    whole: Any | None = None  # running sha256 over [0, offset); None: re-hash from the file
    busy: bool = False
    flushing: asyncio.Future[None] | None = None  # the background flush, if one was started

    def expired(self, now: datetime | None = None) -> bool:
        return as_utc(self.expires_at) <= (now or datetime.now(UTC))


class LiveUploads:
    """The serving process's table of unfinished uploads it has seen (kept on app.state).

    Only an optimisation over the database for the one process that serves a blob directory:
    dropping an entry (or restarting) falls back to the durable offset in the database.
    """

    def __init__(self) -> None:
        self.by_id: dict[str, LiveUpload] = {}
        self.staging = StagingPool()

    def adopt(self, upload: Upload, uploads_dir: Path) -> LiveUpload:
        """The entry for `upload`, created from its database row (durable offset) if new."""
        live = self.by_id.get(upload.id)
        if live is None:
            live = LiveUpload(
                id=upload.id,
                owner=upload.owner_fingerprint,
                length=upload.length,
                expires_at=upload.expires_at,
                path=partial_path(uploads_dir, upload.id),
                offset=upload.offset,
                durable=upload.offset,
            )
            self.by_id[upload.id] = live
        return live

    def busy_ids(self) -> set[str]:
        """Uploads a PATCH holds right now (a snapshot; safe to call from a worker thread)."""
        return {k for k, v in list(self.by_id.items()) if v.busy}


def flush(sessions: sessionmaker[Session], live_path: Path, upload_id: str, target: int) -> None:
    """Make the first `target` bytes of the partial file durable, then record `target` as the
    upload's durable offset (never moving it backwards, never on a finished upload)."""
    try:
        portable.sync_data(live_path)
    except FileNotFoundError:
        return  # completed (renamed into the blob store) or terminated meanwhile
    with sessions() as session:
        session.execute(
            update(Upload)
            .where(
                Upload.id == upload_id,
                Upload.offset < target,
                Upload.completed_at.is_(None),
            )
            .values(offset=target)
        )
        session.commit()


BLOCK = 4096  # O_DIRECT alignment of file offsets, lengths and buffer addresses
STAGING = 4 * 1024 * 1024  # aligned staging buffer for direct writes (a multiple of BLOCK)


class PartialWriter:
    """Appends verified-later bytes to an upload's partial file from a known offset.

    Runs in worker threads (blocking I/O + hashing release the GIL). `whole` is the running
    sha256 of the entire blob; `chunk` the optional per-request Upload-Checksum hash.

    Whole blocks go to the file with O_DIRECT through an aligned staging buffer: buffered
    writes cost several times more CPU here (allocating and copying into page-cache pages, then
    writing them back), and the bytes must reach the disk before completion anyway. The
    unaligned head (from the previous PATCH) is re-read into the buffer, the unaligned tail is
    written with a plain pwrite by finish(). Filesystems without O_DIRECT (tmpfs) get buffered
    writes throughout.
    """

    def __init__(self, path: Path, offset: int, whole: Any, chunk_alg: str | None) -> None:
        self.path = path
        self.start = offset
        self.offset = offset
        self.whole = whole
        # From offset 0, a sha256 Upload-Checksum covers the same bytes as the whole-blob hash:
        # one hash serves both (the client's one-PATCH blobs, every first chunk).
        self.chunk = (
            whole
            if chunk_alg == "sha256" and offset == 0
            else hashlib.new(chunk_alg)
            if chunk_alg
            else None
        )
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, offset)
        os.lseek(self.fd, offset, os.SEEK_SET)
        self.direct_fd: int | None = None
        self.buf: mmap.mmap | None = None
        self.base = offset  # file offset of buf[0] (aligned in direct mode)
        self.fill = 0  # bytes staged in buf
        if hasattr(os, "O_DIRECT"):
            try:
                self.direct_fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                self.direct_fd = None
        if self.direct_fd is not None:
            self.buf = mmap.mmap(-1, STAGING)
            self.base = offset - offset % BLOCK
            self.fill = offset - self.base
            if self.fill:
                head = portable.pread(self.fd, self.fill, self.base)
                if len(head) != self.fill:
                    raise OSError(errno.EIO, "partial upload file is shorter than its offset")
                self.buf[: self.fill] = head

    def write(self, parts: list[bytes]) -> None:
        """Write one slice (as received, no joining copy): into the staging buffer and whole
        blocks straight to the disk, or into the page cache when direct I/O is unavailable."""
        total = sum(len(p) for p in parts)
        if self.buf is None:
            self._write_buffered(parts)
        else:
            try:
                for p in parts:
                    self._stage(memoryview(p))
                self._drain(self.fill - self.fill % BLOCK)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # Direct I/O refused after all (alignment rules of this filesystem): write
                # what is staged plus the rest of this slice buffered, and stay buffered.
                self._give_up_direct(parts)
        self.offset += total

    def _give_up_direct(self, parts: list[bytes]) -> None:
        assert self.buf is not None
        keep = self.offset - self.base  # staged bytes accepted before this slice
        if keep > 0:
            view = memoryview(self.buf)
            try:
                done = 0
                while done < keep:
                    done += portable.pwrite(self.fd, view[done:keep], self.base + done)
            finally:
                view.release()
        os.ftruncate(self.fd, self.offset)
        os.lseek(self.fd, self.offset, os.SEEK_SET)
        self.buf = None  # freed with its last view (the failed write's may still be alive)
        if self.direct_fd is not None:
            os.close(self.direct_fd)
            self.direct_fd = None
        self.fill = 0
        self._write_buffered(parts)

    def _write_buffered(self, parts: list[bytes]) -> None:
        views = [memoryview(p) for p in parts]
        while views:
            n = portable.writev(self.fd, views[:1024])
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]

    def _stage(self, data: memoryview) -> None:
        assert self.buf is not None
        while data:
            n = min(len(data), STAGING - self.fill)
            self.buf[self.fill : self.fill + n] = data[:n]
            self.fill += n
            data = data[n:]
            if self.fill == STAGING:
                self._drain(STAGING)

    def _drain(self, n: int) -> None:
        """Write buf[:n] (whole blocks) at `base` with O_DIRECT; keep the rest staged."""
        assert self.buf is not None and self.direct_fd is not None
        if n <= 0:
            return
        view = memoryview(self.buf)
        try:
            done = 0
            while done < n:
                done += portable.pwrite(self.direct_fd, view[done:n], self.base + done)
        finally:
            view.release()
        self.buf.move(0, n, self.fill - n)
        self.base += n
        self.fill -= n

    def finish(self) -> None:
        """Write the staged unaligned tail (plain pwrite): the file then holds `offset` bytes."""
        if self.buf is not None and self.fill:
            view = memoryview(self.buf)
            try:
                done = 0
                while done < self.fill:
                    done += portable.pwrite(self.fd, view[done : self.fill], self.base + done)
            finally:
                view.release()
            self.base += self.fill
            self.fill = 0

    def hash(self, parts: list[bytes]) -> None:
        """Hash one slice; runs in another worker thread concurrently with write()."""
        chunk = self.chunk if self.chunk is not self.whole else None
        for p in parts:
            self.whole.update(p)
            if chunk is not None:
                chunk.update(p)

    def rollback(self) -> None:
        """Forget this request's bytes (checksum mismatch, disk full)."""
        try:
            os.ftruncate(self.fd, self.start)
        except OSError:
            pass
        self.offset = self.start
        self.fill = 0

    def close(self) -> None:
        os.close(self.fd)
        if self.direct_fd is not None:
            os.close(self.direct_fd)
        if self.buf is not None:
            try:
                self.buf.close()
            except BufferError:
                # A view of it is still referenced (by the traceback of the error being
                # raised, e.g. disk full): the mapping is freed when that goes.
                pass
            self.buf = None


# Direct receive: buffers per receiving PATCH (one filling, the others being hashed and
# written) and their size. Small buffers keep the disk busy across PATCH boundaries: the first
# write of a PATCH starts after STAGE bytes, and the last one ends soon after the last byte.
STAGES = 8
STAGE = 1024 * 1024  # a multiple of BLOCK


class StagingPool:
    """Aligned staging buffers kept between PATCHes (on the event loop only): a fresh
    anonymous mapping costs a page fault per 4 KiB on first touch, a reused one none."""

    def __init__(self, keep: int = 2 * STAGES) -> None:
        self.keep = keep
        self.free: list[mmap.mmap] = []

    def take(self) -> mmap.mmap:
        return self.free.pop() if self.free else mmap.mmap(-1, STAGE)

    def give(self, buf: mmap.mmap) -> None:
        if len(self.free) < self.keep:
            self.free.append(buf)
        else:
            try:
                buf.close()
            except BufferError:  # a view is still alive somewhere: the GC frees it
                pass


@dataclass
class _Stage:
    buf: mmap.mmap
    base: int  # file offset of buf[0] (block-aligned in direct mode)
    start: int  # buf[:start] is already in the file (the head of an unaligned offset)
    fill: int
    users: int = 0  # worker threads still using it (hash, write)


class DirectReceive:
    """The receiving end of a PATCH whose body the kernel copies straight from the socket into
    aligned staging buffers (registry.rawbody): no copy in Python at all.

    A full buffer goes to two worker threads of this PATCH at once, one hashing it (whole blob
    and optional per-request checksum; hashlib releases the GIL) and one writing it (whole
    blocks with O_DIRECT, an unaligned tail of the last buffer with a plain pwrite), while the
    next buffer is being received; with every buffer busy the reader pauses the socket. Bytes
    and order are those of PartialWriter.write()/hash()/finish(): after `finish()` the writer's
    file holds `writer.offset` bytes and `writer.whole` covers them; rollback() and close() are
    the writer's.

    get_buffer/received/set_wake are called on the event loop (registry.rawbody.BodySink).
    """

    def __init__(
        self, writer: PartialWriter, pool: StagingPool, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.writer = writer
        self.pool = pool
        self.loop = loop
        self.direct = writer.direct_fd is not None
        self.count = 0
        self.error: BaseException | None = None
        self.wake: Any = None
        self.stages: list[_Stage] = []  # every stage this PATCH took (returned at the end)
        self.free: list[_Stage] = []
        self.current: _Stage | None = None
        # The first stage starts where the writer's own staging does (the re-read head of an
        # unaligned offset in direct mode), the next ones follow it back to back.
        head = writer.fill if writer.buf is not None else 0
        first = self._new_stage(writer.base if writer.buf is not None else writer.offset)
        if head:
            assert writer.buf is not None
            first.buf[:head] = writer.buf[:head]
            first.start = first.fill = head
        self.current = first
        self.next_base = first.base + STAGE
        writer.fill = 0  # the head now lives in our first stage
        self.queues: tuple[queue.SimpleQueue[_Stage | None], ...] = (
            queue.SimpleQueue(),
            queue.SimpleQueue(),
        )
        self.running = 2
        self.stopped: asyncio.Future[None] = loop.create_future()
        self.threads = [
            threading.Thread(target=self._work, args=(q, fn), daemon=True, name=name)
            for q, fn, name in (
                (self.queues[0], self._hash, "tus-hash"),
                (self.queues[1], self._write, "tus-write"),
            )
        ]
        for t in self.threads:
            t.start()

    def _new_stage(self, base: int) -> _Stage:
        stage = _Stage(self.pool.take(), base, 0, 0)
        self.stages.append(stage)
        return stage

    # -- BodySink (event loop) --------------------------------------------------------------

    def set_wake(self, wake: Any) -> None:
        self.wake = wake

    def has_room(self) -> bool:
        return self.current is not None or bool(self.free) or len(self.stages) < STAGES

    def get_buffer(self, limit: int) -> memoryview | None:
        stage = self.current
        if stage is None:
            if self.free:
                stage = self.free.pop()
                stage.base, stage.start, stage.fill = self.next_base, 0, 0
            elif len(self.stages) < STAGES:
                stage = self._new_stage(self.next_base)
            else:
                return None
            self.next_base += STAGE
            self.current = stage
        end = min(STAGE, stage.fill + limit)
        return memoryview(stage.buf)[stage.fill : end]

    def received(self, n: int) -> None:
        stage = self.current
        assert stage is not None
        stage.fill += n
        self.count += n
        if stage.fill == STAGE:
            self.current = None
            self._submit(stage)

    def _submit(self, stage: _Stage) -> None:
        stage.users = 2
        for q in self.queues:
            q.put(stage)

    def _released(self, stage: _Stage) -> None:
        stage.users -= 1
        if stage.users == 0:
            self.free.append(stage)
            if self.wake is not None:
                self.wake()

    # -- worker threads ---------------------------------------------------------------------

    def _work(self, q: queue.SimpleQueue[_Stage | None], fn: Any) -> None:
        try:
            while (stage := q.get()) is not None:
                try:
                    if self.error is None:
                        fn(stage)
                except BaseException as exc:  # reported by finish(); later stages skipped
                    self.error = self.error or exc
                self.loop.call_soon_threadsafe(self._released, stage)
        finally:
            self.loop.call_soon_threadsafe(self._exited)

    def _exited(self) -> None:
        self.running -= 1
        if self.running == 0 and not self.stopped.done():
            self.stopped.set_result(None)

    def _hash(self, stage: _Stage) -> None:
        view = memoryview(stage.buf)[stage.start : stage.fill]
        try:
            w = self.writer
            w.whole.update(view)
            if w.chunk is not None and w.chunk is not w.whole:
                w.chunk.update(view)
        finally:
            view.release()

    def _write(self, stage: _Stage) -> None:
        w = self.writer
        view = memoryview(stage.buf)
        try:
            done = 0
            if self.direct:
                assert w.direct_fd is not None
                whole = stage.fill - stage.fill % BLOCK
                try:
                    while done < whole:
                        done += portable.pwrite(w.direct_fd, view[done:whole], stage.base + done)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self.direct = False  # this filesystem's alignment rules: stay buffered
            done = max(done, stage.start)
            while done < stage.fill:  # the unaligned tail, or everything when buffered
                done += portable.pwrite(w.fd, view[done : stage.fill], stage.base + done)
        finally:
            view.release()

    # -- end --------------------------------------------------------------------------------

    async def finish(self) -> None:
        """Write and hash what is staged, stop the threads; raise the first error. Afterwards
        the writer's offset, file and hashes are up to date (or the error says what failed)."""
        stage = self.current
        self.current = None
        if stage is not None and stage.fill > stage.start:
            self._submit(stage)
        for q in self.queues:
            q.put(None)
        await self.stopped
        for s in self.stages:
            self.pool.give(s.buf)
        self.stages = self.free = []
        self.writer.offset = self.writer.start + self.count
        if self.error is not None:
            raise self.error


def running_hash(path: Path, offset: int, cached: Any | None) -> Any:
    """sha256 state over the first `offset` bytes: the cached one, or re-hashed from disk
    (after a server restart or when another process wrote the earlier chunks)."""
    if cached is not None:
        return cached
    h = hashlib.sha256()
    if offset == 0:
        return h
    remaining = offset
    with path.open("rb") as fh:
        while remaining:
            block = fh.read(min(HASH_CHUNK, remaining))
            if not block:
                raise OSError(errno.EIO, "partial upload file is shorter than its offset")
            h.update(block)
            remaining -= len(block)
    return h


@dataclass(frozen=True)
class Completion:
    ok: bool
    digest: str
    expected: str


def complete(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    upload_id: str,
    path: Path,
    digest: str,
) -> Completion:
    """Publish the finished partial file as a blob if its sha256 matches, else mark failed."""
    now = datetime.now(UTC)
    with sessions() as session:
        upload = session.get_one(Upload, upload_id)
        if digest != upload.sha256:
            upload.failure = "hash_mismatch"
            upload.completed_at = now
            session.commit()
            path.unlink(missing_ok=True)
            return Completion(False, digest, upload.sha256)
        blobs.put_from_file(path, upload.sha256, upload.length)
        if session.get(Blob, upload.sha256) is None:
            session.add(Blob(sha256=upload.sha256, size=upload.length, stored_at=now))
        upload.completed_at = now
        try:
            session.commit()
        except IntegrityError:  # another upload of the same blob committed first: fine
            session.rollback()
            session.execute(update(Upload).where(Upload.id == upload_id).values(completed_at=now))
            session.commit()
        return Completion(True, digest, upload.sha256)


def purge_expired(
    sessions: sessionmaker[Session], uploads_dir: Path, busy: Collection[str] = ()
) -> list[str]:
    """Delete expired, unfinished uploads (not those with a PATCH running: `busy`) and their
    partial files; returns their ids."""
    now = datetime.now(UTC)
    with sessions() as session:
        found = session.scalars(
            select(Upload.id).where(
                Upload.completed_at.is_(None), Upload.claim.is_(None), Upload.expires_at <= now
            )
        ).all()
        ids = [i for i in found if i not in busy]
        if not ids:
            return []
        session.execute(delete(Upload).where(Upload.id.in_(ids)))
        session.commit()
    for upload_id in ids:
        partial_path(uploads_dir, upload_id).unlink(missing_ok=True)
    return ids
