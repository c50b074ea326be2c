"""POST /v1/uploads/batch: many small blobs of one contribution in one request.

Why: 10,000 files of 4 KB sent as 10,000 tus uploads cost 20,000 round trips; one batch of a
few MiB costs one. Only small blobs (<= MAX_BLOB_BYTES) that the caller's contribution lists
as missing are accepted; each is verified by sha256 and size and made visible through the
BlobStore's files (complete temp file + atomic rename; one syncfs for the whole batch before
the answer and the database rows) — a blob is either complete or absent, never partial.

Body (Content-Type: application/octet-stream):
    4-byte big-endian length N, then N bytes of JSON {"blobs": [{"sha256", "size"}, ...]},
    then the blobs' bytes concatenated in that order.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from registry.auth import CurrentPrincipal, Principal
from registry.blobstore import BlobStore, FileBlobStore
from registry.contributions import get_owned
from registry.db.models import STATE_SUBMITTED, Blob, ContributionFile
from registry.errors import ERROR_RESPONSES, ApiError

router = APIRouter(tags=["uploads"], responses=ERROR_RESPONSES)

MAX_BLOB_BYTES = 1024 * 1024
MAX_BLOBS = 4096
MAX_BATCH_BYTES = 32 * 1024 * 1024
MAX_INDEX_BYTES = 1024 * 1024
WRITERS = 4
_IN_CHUNK = 500  # values per IN (...) query: well under SQLite's and PostgreSQL's limits


class Rejected(BaseModel):
    sha256: str
    reason: str


class BatchResult(BaseModel):
    stored: list[str]
    present: list[str]
    rejected: list[Rejected]


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_batch", message)


def _parse(body: bytes) -> list[tuple[str, int, int]]:
    """[(sha256, size, offset in body)] after checking the framing."""
    if len(body) < 4:
        raise _bad("The body is too short to hold the index length.")
    n = int.from_bytes(body[:4], "big")
    if n > MAX_INDEX_BYTES or 4 + n > len(body):
        raise _bad("The index length is larger than the body or the limit.")
    try:
        index = json.loads(body[4 : 4 + n])
        entries = index["blobs"]
        if not isinstance(entries, list):
            raise TypeError
        listed = [(str(e["sha256"]).lower(), int(e["size"])) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad('The index must be {"blobs": [{"sha256", "size"}, ...]}.') from exc
    if len(listed) > MAX_BLOBS:
        raise _bad(f"At most {MAX_BLOBS} blobs per batch.")
    out: list[tuple[str, int, int]] = []
    pos = 4 + n
    for sha, size in listed:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise _bad(f"{sha!r} is not a hex sha256.")
        if size < 0 or size > MAX_BLOB_BYTES:
            raise _bad(f"Blob {sha} is not a small blob (at most {MAX_BLOB_BYTES} bytes).")
        out.append((sha, size, pos))
        pos += size
    if pos != len(body):
        raise _bad(f"The index lists {pos} bytes but the body has {len(body)}.")
    return out


def _syncfs(folder: Path) -> None:
    """Flush the blob filesystem once (Linux syncfs), instead of two fsyncs per small blob."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def put_many(blobs: BlobStore, items: list[tuple[str, int, bytes]]) -> None:
    """Store verified small blobs. On the filesystem store: group commit (write temp files,
    rename each into place, one syncfs); a reader still never sees a partial blob because
    each becomes visible by rename of a complete file. Other stores: put_from_file each."""
    if not isinstance(blobs, FileBlobStore):
        for sha, size, data in items:
            tmp = _write_tmp(blobs_tmp_dir(blobs), _tmp_name(), data)
            blobs.put_from_file(tmp, sha, size)
        return
    fs = blobs
    names = _tmp_names()

    def place(item: tuple[str, int, bytes]) -> None:
        # Few syscalls per blob (they dominate a batch of 4 KB blobs): no exists-check (the
        # caller skipped blobs with rows; replacing identical bytes is harmless), and the
        # fan-out folders are created only when the rename says they are missing.
        sha, _size, data = item
        dest = fs.path_for(sha)
        tmp = _write_tmp(fs.tmp_dir, names(), data)
        try:
            os.replace(tmp, dest)
        except FileNotFoundError:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)

    with ThreadPoolExecutor(WRITERS) as pool:  # file syscalls release the GIL
        list(pool.map(place, items))
    if items:
        _syncfs(blobs.root)


def blobs_tmp_dir(blobs: BlobStore) -> Path:
    folder = getattr(blobs, "tmp_dir", None)
    return Path(folder) if folder is not None else Path(tempfile.gettempdir())


def _tmp_name() -> str:
    return f"batch-{secrets.token_hex(8)}"


def _tmp_names() -> Callable[[], str]:
    """Unique temp names for one batch: one random prefix and a counter (next() on a count
    is atomic under the GIL), not a getrandom call per blob."""
    prefix, counter = _tmp_name(), itertools.count()
    return lambda: f"{prefix}-{next(counter)}"


def _write_tmp(folder: Path, name: str, data: bytes) -> Path:
    """A new temp file holding `data` (raw os calls: open() adds an fstat and an ioctl)."""
    tmp = folder / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return tmp


def _expected_sizes(session: Session, contribution_id: str, shas: list[str]) -> dict[str, int]:
    """Manifest sizes of the batch's blobs in this contribution: only the listed ones (a batch
    of 2,000 must not load a 100,000-file manifest's rows every time)."""
    found: dict[str, int] = {}
    for start in range(0, len(shas), _IN_CHUNK):
        for sha, size in session.execute(
            select(ContributionFile.sha256, ContributionFile.size).where(
                ContributionFile.contribution_id == contribution_id,
                ContributionFile.sha256.in_(shas[start : start + _IN_CHUNK]),
            )
        ):
            found[sha] = size
    return found


def _existing_rows(session: Session, shas: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(shas), _IN_CHUNK):
        part = shas[start : start + _IN_CHUNK]
        found.update(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(part))))
    return found


def _insert_rows(session: Session, rows: list[tuple[str, int]]) -> None:
    """One INSERT for the batch; if a concurrent upload won a row, insert the rest one by one."""
    now = datetime.now(UTC)
    session.add_all(Blob(sha256=sha, size=size, stored_at=now) for sha, size in rows)
    try:
        session.commit()
        return
    except IntegrityError:
        session.rollback()
    for sha, size in rows:
        try:
            with session.begin_nested():
                session.add(Blob(sha256=sha, size=size, stored_at=now))
        except IntegrityError:
            pass
    session.commit()


def _store(
    request: Request, principal: Principal, contribution_id: str, body: bytes
) -> BatchResult:
    entries = _parse(body)
    sessions = request.app.state.sessions
    blobs: BlobStore = request.app.state.blobs
    with sessions() as session:
        try:
            contribution = get_owned(session, principal, contribution_id)
        except ApiError:
            raise ApiError(404, "not_found", "No such contribution.") from None
        if contribution.state != STATE_SUBMITTED:
            raise ApiError(409, "not_uploadable", f"The contribution is {contribution.state}.")
        listed = list(dict.fromkeys(sha for sha, _, _ in entries))
        expected = _expected_sizes(session, contribution.id, listed)
        result = BatchResult(stored=[], present=[], rejected=[])
        have = _existing_rows(session, listed)
        to_write: dict[str, tuple[str, int, bytes]] = {}
        for sha, size, pos in entries:
            if expected.get(sha) != size:
                reason = "not in this contribution" if sha not in expected else "wrong size"
                result.rejected.append(Rejected(sha256=sha, reason=reason))
                continue
            data = body[pos : pos + size]
            if hashlib.sha256(data).hexdigest() != sha:
                result.rejected.append(Rejected(sha256=sha, reason="sha256 mismatch"))
                continue
            if sha in have and blobs.has(sha):
                result.present.append(sha)
                continue
            if sha not in to_write:
                to_write[sha] = (sha, size, data)
                result.stored.append(sha)
        put_many(blobs, list(to_write.values()))  # durable before the rows say they exist
        _insert_rows(
            session, [(sha, size) for sha, size, _ in to_write.values() if sha not in have]
        )
    return result


@router.post("/v1/uploads/batch", response_model=BatchResult)
async def upload_batch(
    request: Request,
    principal: CurrentPrincipal,
    contribution: Annotated[str, Query(min_length=1, max_length=40)],
) -> BatchResult:
    """Store many small missing blobs of one of your contributions, each verified."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise ApiError(411, "length_required", "Send Content-Length.")
    if int(length) > MAX_BATCH_BYTES:
        raise ApiError(413, "payload_too_large", f"A batch is at most {MAX_BATCH_BYTES} bytes.")
    body = await request.body()
    result: BatchResult = await run_in_threadpool(_store, request, principal, contribution, body)
    return result
