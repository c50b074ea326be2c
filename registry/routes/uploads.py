"""tus 1.0.0 at /v1/uploads/: core, creation, termination, expiration, checksum (sha256, sha1).

Bodies are streamed to disk (never held whole in memory) in ~4 MiB slices; writing and hashing
of one slice overlaps with receiving the next.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import pathlib
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from registry import rawbody, tus
from registry.auth import CurrentPrincipal, Principal, as_utc
from registry.contributions import get_owned
from registry.db.models import STATE_SUBMITTED, ContributionFile, Upload
from registry.db.session import DbSession
from registry.errors import ApiError, ErrorResponse
from registry.settings import RegistrySettings

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = "sha256,sha1"
SLICE = 1024 * 1024
DEPTH = 4  # slices in flight (written + hashed) behind the one being received

log = logging.getLogger("registry.errors")


def _tus_errors(*codes: int, ok: tuple[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Bad tus headers or metadata",
        401: "Missing, forged or expired token",
        404: "No such upload (or not yours)",
        409: "Upload-Offset does not match, or another PATCH is in progress",
        410: "Upload expired",
        412: "Tus-Resumable missing or unsupported",
        413: "Upload too large",
        415: "Content-Type must be application/offset+octet-stream",
        460: "Checksum mismatch (chunk or whole blob); the bytes were discarded",
        507: "Insufficient storage; nothing was stored, retry later",
    }
    out: dict[int | str, dict[str, Any]] = {
        c: {"model": ErrorResponse, "description": text[c]} for c in codes
    }
    if ok is not None:
        out[ok[0]] = {"description": ok[1]}
    return out


def check_tus_resumable(
    request: Request, tus_resumable: Annotated[str | None, Header()] = None
) -> None:
    """Every tus request but OPTIONS must say it speaks tus 1.0.0 (else 412)."""
    if request.method != "OPTIONS" and tus_resumable != TUS_VERSION:
        raise tus_error(412, "tus_version", "Send Tus-Resumable: 1.0.0.")


router = APIRouter(tags=["uploads"], dependencies=[Depends(check_tus_resumable)])

UploadId = Annotated[str, Path(min_length=1, max_length=40)]


def tus_error(status: int, code: str, message: str, details: Any = None) -> ApiError:
    headers = {"Tus-Resumable": TUS_VERSION}
    if status == 412:
        headers["Tus-Version"] = TUS_VERSION
    return ApiError(status, code, message, details, headers)


def _settings(request: Request) -> RegistrySettings:
    settings: RegistrySettings = request.app.state.settings
    return settings


def _expires_header(upload: Upload) -> str:
    return format_datetime(as_utc(upload.expires_at), usegmt=True)


def _owned_upload(session: DbSession, principal: CurrentPrincipal, upload_id: str) -> Upload:
    upload = session.get(Upload, upload_id)
    if upload is None or upload.owner_fingerprint not in principal.all_fingerprints:
        raise tus_error(404, "not_found", "No such upload.")
    if tus.is_expired(upload):
        raise tus_error(410, "upload_expired", "This upload has expired; create a new one.")
    return upload


@router.options("/v1/uploads/", status_code=204, response_class=Response)
def tus_options(request: Request) -> Response:
    """Server capabilities (tus discovery); no authentication needed."""
    return _capabilities(request)


@router.options("/v1/uploads/{upload_id}", status_code=204, response_class=Response)
def tus_upload_options(upload_id: UploadId, request: Request) -> Response:
    """The same capabilities, asked on an upload's URL (tus clients may do either)."""
    return _capabilities(request)


def _capabilities(request: Request) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Checksum-Algorithm": CHECKSUM_ALGORITHMS,
            "Tus-Max-Size": str(_settings(request).max_upload_bytes),
        },
    )


@router.post(
    "/v1/uploads/",
    status_code=201,
    response_class=Response,
    responses=_tus_errors(
        400, 401, 404, 409, 412, 413, ok=(201, "Created; Location names the upload")
    ),
)
def create_upload(
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    upload_length: Annotated[str | None, Header()] = None,
    upload_metadata: Annotated[str | None, Header()] = None,
) -> Response:
    """Create an upload for one blob a contribution of yours is missing.

    Upload-Metadata must carry `sha256` (hex of the whole blob) and `contribution` (its id).
    """
    length = tus.parse_uint(upload_length)
    if length is None:
        raise tus_error(
            400, "bad_length", "Upload-Length (bytes, at most 19 ASCII digits) is required."
        )
    if length > _settings(request).max_upload_bytes:
        raise tus_error(413, "too_large", "The blob is larger than Tus-Max-Size.")
    try:
        meta = tus.parse_metadata(upload_metadata)
    except ValueError as exc:
        raise tus_error(400, "bad_metadata", f"Upload-Metadata: {exc}.") from exc
    sha256 = meta.get("sha256", "").lower()
    contribution_id = meta.get("contribution", "")
    if len(sha256) != 64 or not contribution_id:
        raise tus_error(
            400, "bad_metadata", "Upload-Metadata needs 'sha256' (hex) and 'contribution' (id)."
        )
    try:
        contribution = get_owned(session, principal, contribution_id)
    except ApiError as exc:
        raise tus_error(404, "not_found", "No such contribution.") from exc
    if contribution.state != STATE_SUBMITTED:
        raise tus_error(409, "not_uploadable", f"The contribution is {contribution.state}.")
    expected = session.scalars(
        select(ContributionFile.size)
        .where(
            ContributionFile.contribution_id == contribution.id,
            ContributionFile.sha256 == sha256,
        )
        .limit(1)
    ).first()
    if expected is None:
        raise tus_error(400, "blob_not_expected", "This contribution does not list that sha256.")
    if expected != length:
        raise tus_error(
            400, "bad_length", f"The manifest says this blob has {expected} bytes, not {length}."
        )
    table = _live(request)
    for gone in tus.purge_expired(
        request.app.state.sessions, request.app.state.uploads_dir, table.busy_ids()
    ):
        table.by_id.pop(gone, None)
    now = datetime.now(UTC)
    upload = Upload(
        id=tus.new_upload_id(),
        contribution_id=contribution.id,
        owner_fingerprint=principal.fingerprint,
        sha256=sha256,
        length=length,
        offset=0,
        meta=meta,
        created_at=now,
        expires_at=now + timedelta(seconds=_settings(request).upload_expiry_s),
    )
    session.add(upload)
    session.commit()
    tus.partial_path(request.app.state.uploads_dir, upload.id).touch(mode=0o600)
    # The configured public URL, not the request's Host header (which the caller chooses).
    base = _settings(request).public_url or str(request.base_url)
    location = base.rstrip("/") + f"/v1/uploads/{upload.id}"
    return Response(
        status_code=201,
        headers={
            "Location": location,
            "Tus-Resumable": TUS_VERSION,
            "Upload-Expires": _expires_header(upload),
            "Upload-Offset": "0",
        },
    )


@router.head(
    "/v1/uploads/{upload_id}",
    response_class=Response,
    responses=_tus_errors(401, 404, 410, 412, ok=(200, "Upload-Offset and Upload-Length headers")),
)
async def head_upload(
    upload_id: UploadId, request: Request, principal: CurrentPrincipal
) -> Response:
    """Where to resume: the persisted (fsynced) offset."""
    # Bytes acknowledged to PATCHes but not yet synced are flushed first, so a live upload
    # answers with everything it acknowledged, and a HEAD never reports unsynced bytes.
    state = request.app.state
    upload = await run_in_threadpool(_load, state.sessions, principal, upload_id)
    offset = upload.offset
    if upload.completed_at is not None:
        offset = upload.offset if upload.failure else upload.length
    else:
        live = _live(request).by_id.get(upload_id)
        if live is not None:
            await _settle(live)
            offset = await _make_durable(request, live, live.offset)
    return Response(
        status_code=200,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Upload-Offset": str(offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": _expires_header(upload),
            "Upload-Metadata": tus.encode_metadata(upload.meta),
            "Cache-Control": "no-store",
        },
    )


@router.delete(
    "/v1/uploads/{upload_id}",
    status_code=204,
    response_class=Response,
    responses=_tus_errors(401, 404, 409, 410, 412),
)
async def delete_upload(
    upload_id: UploadId, request: Request, principal: CurrentPrincipal
) -> Response:
    """Termination: forget the upload and its partial bytes."""
    state = request.app.state
    upload = await run_in_threadpool(_load, state.sessions, principal, upload_id)
    table = _live(request)
    live = table.adopt(upload, state.uploads_dir)
    if live.busy or upload.claim is not None:
        raise tus_error(409, "busy", "A PATCH is in progress on this upload.")
    live.busy = True  # no PATCH may start while the row and file go away
    try:
        await run_in_threadpool(_terminate, state.sessions, upload_id, live.path)
    finally:
        table.by_id.pop(upload_id, None)
    return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})


def _terminate(sessions: sessionmaker[Session], upload_id: str, path: pathlib.Path) -> None:
    with sessions() as session:
        session.execute(delete(Upload).where(Upload.id == upload_id))
        session.commit()
    path.unlink(missing_ok=True)


def _live(request: Request) -> tus.LiveUploads:
    """This process's live-upload table (created on first use; lives on app.state)."""
    state = request.app.state
    table: tus.LiveUploads | None = getattr(state, "tus_live", None)
    if table is None:
        table = tus.LiveUploads()
        state.tus_live = table
    return table


def _load(sessions: sessionmaker[Session], principal: Principal, upload_id: str) -> Upload:
    with sessions() as session:
        return _owned_upload(session, principal, upload_id)


async def _make_durable(request: Request, live: tus.LiveUpload, target: int) -> int:
    """fdatasync the partial file and record `target` as durable; returns the durable offset.

    If syncing fails, the acknowledged-but-unsynced bytes may be gone from the page cache too:
    the live entry is dropped so the next request starts again from the durable offset."""
    if target <= live.durable:
        return live.durable
    state = request.app.state
    try:
        await run_in_threadpool(tus.flush, state.sessions, live.path, live.id, target)
    except OSError as exc:
        _live(request).by_id.pop(live.id, None)
        raise _storage_error(exc) from exc
    live.durable = max(live.durable, target)
    return live.durable


@router.patch(
    "/v1/uploads/{upload_id}",
    status_code=204,
    response_class=Response,
    responses=_tus_errors(
        400,
        401,
        404,
        409,
        410,
        412,
        413,
        415,
        460,
        507,
        ok=(204, "Bytes stored; Upload-Offset is the new offset"),
    ),
)
async def patch_upload(
    upload_id: UploadId,
    request: Request,
    principal: CurrentPrincipal,
    content_type: Annotated[str | None, Header()] = None,
    upload_offset: Annotated[str | None, Header()] = None,
    upload_checksum: Annotated[str | None, Header()] = None,
) -> Response:
    """Append bytes at Upload-Offset; on the last byte, verify sha256 and publish the blob."""
    if (content_type or "").split(";")[0].strip().lower() != "application/offset+octet-stream":
        raise tus_error(
            415, "bad_content_type", "Use Content-Type: application/offset+octet-stream."
        )
    offset = tus.parse_uint(upload_offset)
    if offset is None:
        raise tus_error(
            400, "bad_offset", "Upload-Offset (bytes, at most 19 ASCII digits) is required."
        )
    try:
        checksum = tus.parse_checksum(upload_checksum)
    except ValueError as exc:
        raise tus_error(400, "bad_checksum", f"Upload-Checksum: {exc}.") from exc
    state = request.app.state
    table = _live(request)
    live = table.by_id.get(upload_id)
    if live is None or live.owner not in principal.all_fingerprints or live.expired():
        # Not seen since this process started (or not yours / expired: the row says which).
        upload = await run_in_threadpool(_load, state.sessions, principal, upload_id)
        if upload.completed_at is not None or upload.failure is not None:
            raise tus_error(409, "completed", "This upload is already complete.")
        live = table.adopt(upload, state.uploads_dir)
    if live.busy:
        raise tus_error(409, "offset_mismatch", "Another PATCH is writing this upload.")
    if live.offset != offset:
        raise tus_error(
            409, "offset_mismatch", f"Upload-Offset is {offset}, the upload is at {live.offset}."
        )
    live.busy = True  # tested and set with no await in between: this PATCH owns the upload
    try:
        return await _receive(request, live, checksum)
    finally:
        live.busy = False


async def _receive(
    request: Request, live: tus.LiveUpload, checksum: tuple[str, bytes] | None
) -> Response:
    state = request.app.state
    start = live.offset
    try:
        whole: Any = live.whole
        if whole is None:
            whole = await run_in_threadpool(tus.running_hash, live.path, start, None)
            live.whole = whole
        # A few cheap syscalls (open, ftruncate to the current size, one block pread): done
        # inline, a thread hop per PATCH costs more than they do on a busy machine.
        writer = tus.PartialWriter(
            live.path, start, whole.copy(), checksum[0] if checksum else None
        )
    except OSError as exc:
        raise _storage_error(exc) from exc
    try:
        raw = request.scope.get("extensions", {}).get(rawbody.EXTENSION)
        room = live.length - start
        if isinstance(raw, rawbody.RawBody) and raw.available() and raw.length <= room:
            await _read_body_direct(request, raw, writer, checksum)
        else:
            await _read_body(request, writer, live.length - start, checksum)
    except OSError as exc:
        await run_in_threadpool(writer.rollback)
        raise _storage_error(exc) from exc
    finally:
        writer.close()
    new_offset = writer.offset
    headers = {
        "Tus-Resumable": TUS_VERSION,
        "Upload-Offset": str(new_offset),
        "Upload-Expires": format_datetime(as_utc(live.expires_at), usegmt=True),
    }
    if new_offset < live.length:
        live.offset = new_offset
        live.whole = writer.whole
        _flush_soon(request, live)
        return Response(status_code=204, headers=headers)
    await _settle(live)
    try:
        # put_from_file fsyncs the whole file before the atomic rename that publishes it.
        done = await run_in_threadpool(
            tus.complete, state.sessions, state.blobs, live.id, live.path, writer.whole.hexdigest()
        )
    except OSError as exc:
        _live(request).by_id.pop(live.id, None)  # resume from the durable offset
        raise _storage_error(exc) from exc
    _live(request).by_id.pop(live.id, None)
    if not done.ok:
        raise tus_error(
            460,
            "blob_hash_mismatch",
            "The uploaded bytes do not have the declared sha256; the upload was discarded.",
            {"expected": done.expected, "actual": done.digest},
        )
    return Response(status_code=204, headers=headers)


def _flush_soon(request: Request, live: tus.LiveUpload) -> None:
    """Start making the acknowledged offset durable in the background (one flush at a time per
    upload; a PATCH answered meanwhile is covered by the flush after the next PATCH, a HEAD or
    completion). The PATCH answer never waits for the disk."""
    if live.offset > live.durable and (live.flushing is None or live.flushing.done()):
        live.flushing = asyncio.ensure_future(_flush_quietly(request, live, live.offset))


async def _flush_quietly(request: Request, live: tus.LiveUpload, target: int) -> None:
    try:
        await _make_durable(request, live, target)
    except Exception:  # logged; the live entry was dropped, so HEAD still tells the truth
        log.exception("flushing upload %s failed", live.id)


async def _settle(live: tus.LiveUpload) -> None:
    """Wait for a background flush of `live` (its failure is already handled and logged)."""
    if live.flushing is not None:
        await live.flushing


async def _read_body(
    request: Request,
    writer: tus.PartialWriter,
    remaining: int,
    checksum: tuple[str, bytes] | None,
) -> None:
    """Stream the body into `writer`: each slice is written and hashed in worker threads (in
    order per kind, the two side by side), up to DEPTH slices behind the network, so a slow
    disk or a descheduled thread does not stall receiving at once. Raises 413/460 after
    rolling back, OSError to the caller."""
    interrupted = too_long = False
    parts: list[bytes] = []
    size = received = 0
    inflight: deque[asyncio.Future[Any]] = deque()
    # Each step waits for the previous one of its kind: writes (one after another, at the
    # file position) and hashes (in order) run in pooled worker threads, side by side.
    last: dict[str, asyncio.Future[None] | None] = {"write": None, "hash": None}

    def submit(slice_: list[bytes]) -> None:
        steps = []
        for kind, fn in (("write", writer.write), ("hash", writer.hash)):
            step = asyncio.ensure_future(_after(last[kind], fn, slice_))
            last[kind] = step
            steps.append(step)
        inflight.append(asyncio.gather(*steps))

    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > remaining:
                too_long = True
                break
            parts.append(chunk)
            size += len(chunk)
            if size >= SLICE:
                submit(parts)
                parts, size = [], 0
                while len(inflight) >= DEPTH:
                    await inflight.popleft()
    except ClientDisconnect:
        interrupted = True
    finally:
        # Every slice lands (or fails) before anything may truncate the file.
        outcomes = await asyncio.gather(*inflight, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    if too_long:
        await run_in_threadpool(writer.rollback)
        raise tus_error(413, "too_long", "The body goes past Upload-Length.")
    if parts:
        submit(parts)
        await inflight.pop()
    await run_in_threadpool(writer.finish)
    if checksum is not None:
        assert writer.chunk is not None
        if interrupted or not hmac.compare_digest(writer.chunk.digest(), checksum[1]):
            await run_in_threadpool(writer.rollback)
            raise tus_error(
                460, "checksum_mismatch", "Upload-Checksum does not match; chunk discarded."
            )


async def _read_body_direct(
    request: Request,
    raw: rawbody.RawBody,
    writer: tus.PartialWriter,
    checksum: tuple[str, bytes] | None,
) -> None:
    """Like _read_body, with the kernel copying the body straight into the writer's aligned
    staging buffers (registry.rawbody): used when the server offers it and Content-Length fits
    the upload. A client that goes away keeps what arrived (unless it sent a checksum)."""
    sink = tus.DirectReceive(writer, _live(request).staging, asyncio.get_running_loop())
    try:
        complete = await raw.read_into(sink)
    finally:
        await sink.finish()  # every staged byte lands (or fails) before anything truncates
    if checksum is not None:
        assert writer.chunk is not None
        if not complete or not hmac.compare_digest(writer.chunk.digest(), checksum[1]):
            await run_in_threadpool(writer.rollback)
            raise tus_error(
                460, "checksum_mismatch", "Upload-Checksum does not match; chunk discarded."
            )


async def _after(
    previous: asyncio.Future[None] | None, fn: Callable[[list[bytes]], None], arg: list[bytes]
) -> None:
    if previous is not None:
        await previous  # its failure fails this step too: nothing is written out of order
    await run_in_threadpool(fn, arg)


def _storage_error(exc: OSError) -> ApiError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return tus_error(
            507,
            "insufficient_storage",
            "The registry's disk is full; nothing from this request was kept. Retry later.",
        )
    raise exc
