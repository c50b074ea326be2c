"""POST /v1/uploads/batch: many small blobs of one contribution in one request.

Why: 10,000 files of 4 KB sent as 10,000 tus uploads cost 20,000 round trips; one batch of a
few MiB costs one. Only small blobs (<= MAX_BLOB_BYTES) that the caller's contribution lists
are accepted; each is verified by sha256 and size, then the batch is made durable
by BlobStore.put_many (on the filesystem: one pack file, fsynced and renamed into place)
before the Blob rows say the blobs exist — a blob is either complete or absent, never partial.
Every blob whose bytes the caller sent and that hashed right (stored, or already present) is
recorded as held by the caller's key (registry/possession.py).

Body (Content-Type: application/octet-stream):
    4-byte big-endian length N, then N bytes of JSON {"blobs": [{"sha256", "size"}, ...]},
    then the blobs' bytes concatenated in that order.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.domain import boundedjson
from app.durable import gc_paused
from app.manifest.canonical import is_sha256_hex
from registry import possession, rawbody
from registry.auth import CurrentPrincipal, Principal
from registry.blobstore import BlobStore
from registry.contributions import get_owned
from registry.db.models import STATE_SUBMITTED, Blob
from registry.errors import ERROR_RESPONSES, ApiError

router = APIRouter(tags=["uploads"], responses=ERROR_RESPONSES)

MAX_BLOB_BYTES = 1024 * 1024
MAX_BLOBS = 4096
MAX_BATCH_BYTES = 32 * 1024 * 1024
MAX_INDEX_BYTES = 1024 * 1024
_POSITIONAL = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # sqlite3; psycopg takes %s


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
        index = boundedjson.loads(body[4 : 4 + n])  # depth, NaN/Infinity, 1e400: ValueError
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
        if not is_sha256_hex(sha):
            raise _bad(f"{sha!r} is not a hex sha256.")
        if size < 0 or size > MAX_BLOB_BYTES:
            raise _bad(f"Blob {sha} is not a small blob (at most {MAX_BLOB_BYTES} bytes).")
        out.append((sha, size, pos))
        pos += size
    if pos != len(body):
        raise _bad(f"The index lists {pos} bytes but the body has {len(body)}.")
    return out


def _batch_rows(
    session: Session, contribution_id: str, shas: list[str]
) -> tuple[dict[str, int], set[str]]:
    """Manifest sizes of the batch's blobs in this contribution, and which of them have a Blob
    row: one joined query with the listed shas as ONE JSON parameter (no statement with
    thousands of placeholders to build), never the whole manifest (a batch of 2,000 must not
    load a 100,000-file manifest's rows every time)."""
    expected: dict[str, int] = {}
    have: set[str] = set()
    if not shas:
        return expected, have
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        listed = "ANY(ARRAY(SELECT json_array_elements_text(CAST(:shas AS json))))"
        in_list = f"= {listed}"
    else:
        in_list = "IN (SELECT value FROM json_each(:shas))"
    # `|| ''` keeps the planner on the sha256 index (a probe per listed blob) instead of
    # scanning the whole manifest by primary key.
    rows = conn.execute(
        text(
            "SELECT f.sha256, f.size, b.sha256 FROM contribution_files f "
            "LEFT OUTER JOIN blobs b ON b.sha256 = f.sha256 "
            f"WHERE f.contribution_id || '' = :cid AND f.sha256 {in_list}"
        ),
        {"cid": contribution_id, "shas": json.dumps(shas)},
    )
    for sha, size, row in rows:
        expected[sha] = size
        if row is not None:
            have.add(sha)
    return expected, have


def _insert_rows(session: Session, rows: list[tuple[str, int]]) -> None:
    """One driver-level executemany for the batch (no ORM object, no per-row parameter
    processing); rows a concurrent upload wrote first are skipped (ON CONFLICT DO NOTHING,
    understood by SQLite and PostgreSQL)."""
    if rows:
        conn = session.connection()
        table = cast(Table, Blob.__table__)
        now: object = datetime.now(UTC)
        column_type = table.c.stored_at.type.dialect_impl(conn.dialect)
        to_db = column_type.bind_processor(conn.dialect)
        if to_db is not None:
            now = to_db(now)  # once for the batch, not once per row
        mark = _POSITIONAL.get(conn.dialect.paramstyle)
        if mark is not None and conn.dialect.name in ("sqlite", "postgresql"):
            conn.exec_driver_sql(
                f"INSERT INTO {table.name} (sha256, size, stored_at) "
                f"VALUES ({mark}, {mark}, {mark}) ON CONFLICT (sha256) DO NOTHING",
                [(sha, size, now) for sha, size in rows],
            )
        else:  # pragma: no cover - other databases: skip the rows that already exist
            stamp = datetime.now(UTC)
            taken = set(
                conn.scalars(
                    select(table.c.sha256).where(table.c.sha256.in_([sha for sha, _ in rows]))
                )
            )
            fresh = [
                {"sha256": sha, "size": size, "stored_at": stamp}
                for sha, size in rows
                if sha not in taken
            ]
            if fresh:
                conn.execute(insert(table), fresh)
    session.commit()


def _store(
    request: Request, principal: Principal, contribution_id: str, body: bytes
) -> BatchResult:
    with gc_paused():  # thousands of row tuples and blob slices per batch
        return _store_batch(request, principal, contribution_id, body)


def _store_batch(
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
        expected, have = _batch_rows(session, contribution.id, listed)
        # A row without its bytes (a lost or damaged pack) must be stored again, not "present".
        in_store = blobs.sizes(sorted(have)) if have else {}
        result = BatchResult(stored=[], present=[], rejected=[])
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
            if in_store.get(sha) == size:
                result.present.append(sha)
                continue
            if sha not in to_write:
                to_write[sha] = (sha, size, data)
                result.stored.append(sha)
        blobs.put_many(list(to_write.values()))  # durable before the rows say they exist
        # The caller sent these bytes: it holds them (committed with the blob rows).
        possession.grant(
            session, principal.fingerprint, [*result.stored, *result.present], possession.HOW_UPLOAD
        )
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
    body = await rawbody.body_of(request)  # straight into one buffer under our server
    result: BatchResult = await run_in_threadpool(_store, request, principal, contribution, body)
    return result
