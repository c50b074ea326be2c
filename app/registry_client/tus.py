"""tus 1.0.0 client: creation, resume from the server's offset, checksummed chunked PATCH.

Why our own and not tuspy: we need the queue's persistence hooks (upload URL and confirmed
offset written to the catalogue as they change), a stop flag honoured mid-chunk, a shared
bandwidth limiter, and the registry's error mapping. tuspy remains the interop check in tests.

Memory stays flat whatever the file size: each PATCH body is a FileSlice that reads its
window of the file block by block while requests sends it; the chunk's checksum is computed
by a first streaming pass over the same window (served from the page cache on the second).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from app.domain.errors import RegistryUnavailable
from app.manifest.canonical import is_sha256_hex
from app.registry_client.http import (
    ApiRefused,
    OutOfBounds,
    RegistryHttp,
    TooSlow,
    Unreachable,
    error_message,
    header_offset,
    held_back,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
DEFAULT_CHUNK = 16 * 1024 * 1024
READ_BLOCK = 1024 * 1024
UPLOADS_PATH = "/v1/uploads/"
# The slowest average rate a PATCH may go at: a PATCH of n bytes must end (body sent and
# answer read) within Timeouts.total + n / PATCH_FLOOR_BPS seconds, not counting the time the
# bandwidth limiter holds it back; 90 s + 8.5 min for a 16 MiB chunk. Per-read timeouts alone
# let a registry that reads or answers a byte every few seconds hold one PATCH open forever;
# past the deadline the PATCH is cut and the upload resumes from the registry's offset (HEAD).
PATCH_FLOOR_BPS = 32 * 1024


class UploadStopped(Exception):
    """The caller's stop flag was set (pause, cancel, shutdown); nothing is lost."""


class ChecksumFailed(Exception):
    """The registry kept refusing a chunk's checksum: the file is changing under us."""


class BandwidthLimiter:
    """A token bucket shared by every worker: `rate` bytes per second, small bursts.

    The rate can change while uploads run (`set_rate`, 0 = unlimited): the next block obeys
    it, and a worker waiting under the old rate wakes up and waits only what the new rate
    asks."""

    def __init__(self, rate_bytes_per_s: int, *, clock: Callable[[], float] = time.monotonic):
        if rate_bytes_per_s < 0:
            raise ValueError("rate must not be negative")
        self._clock = clock
        self._cond = threading.Condition()
        self.rate = 0.0
        self.capacity = float(READ_BLOCK)
        self._tokens = 0.0
        self._last = clock()
        self.set_rate(rate_bytes_per_s)

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def set_rate(self, rate_bytes_per_s: int) -> None:
        if rate_bytes_per_s < 0:
            raise ValueError("rate must not be negative")
        with self._cond:
            self.rate = float(rate_bytes_per_s)
            self.capacity = max(self.rate / 4, 16 * 1024.0) if self.rate else float(READ_BLOCK)
            self._tokens = min(self._tokens, self.capacity) if self.rate else self.capacity
            self._last = self._clock()
            self._cond.notify_all()

    def block_size(self) -> int:
        """Read this much at a time so a stop flag (or a new rate) is seen within ~0.25 s."""
        return max(4096, min(READ_BLOCK, int(self.capacity)))

    def _refill(self) -> None:
        now = self._clock()
        if self.rate > 0:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self, n: int) -> None:
        with self._cond:
            if self.rate <= 0:
                return
            self._refill()
            self._tokens -= n
            while self.rate > 0 and self._tokens < 0:
                # Woken early by set_rate: the debt is then paid at the new rate.
                self._cond.wait(-self._tokens / self.rate)
                self._refill()


class FileSlice:
    """A read-only file-like window [start, start+length) of a file, sent as a PATCH body.

    It has __len__ (so requests sets Content-Length) and no fileno (so requests does not take
    the whole file's size)."""

    def __init__(
        self,
        path: Path,
        start: int,
        length: int,
        *,
        limiter: BandwidthLimiter | None = None,
        on_bytes: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()/read end
        self._fh.seek(start)
        self._left = length
        self._length = length
        self._limiter = limiter
        self._on_bytes = on_bytes
        self._stop = stop

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._stop is not None and self._stop.is_set():
            self.close()
            raise UploadStopped("stopped")
        if self._left <= 0:
            self.close()
            return b""
        n = self._left if size is None or size < 0 else min(size, self._left)
        if self._limiter is not None:
            n = min(n, self._limiter.block_size())
            with held_back():  # our own limit is not the registry's delay
                self._limiter.acquire(n)
        data = self._fh.read(n)
        if not data:
            self.close()
            raise OSError(f"the file ended early (it was truncated): {self._fh.name}")
        self._left -= len(data)
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        return data

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def chunk_digest(path: Path, start: int, length: int) -> bytes:
    """sha256 of one window of a file, read in blocks (memory stays flat)."""
    h = hashlib.sha256()
    buf = bytearray(min(READ_BLOCK, max(length, 1)))
    view = memoryview(buf)
    left = length
    with open(path, "rb", buffering=0) as fh:
        fh.seek(start)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), start, length, os.POSIX_FADV_SEQUENTIAL)
        while left > 0:
            n = fh.readinto(view[: min(len(buf), left)])
            if not n:
                raise OSError(f"the file ended early (it was truncated): {path}")
            h.update(view[:n])
            left -= n
    return h.digest()


def encode_metadata(meta: Mapping[str, str]) -> str:
    return ",".join(
        f"{k} {base64.b64encode(v.encode('utf-8')).decode('ascii')}" for k, v in meta.items()
    )


@dataclass(frozen=True, slots=True)
class UploadHooks:
    """Callbacks of one upload; all optional, called on the uploading thread.

    on_url(url): a new upload was created (persist it to resume after a crash);
    on_confirmed(offset): the registry confirmed bytes up to offset (persist it);
    on_sent(n): n more bytes went onto the wire (for rate and progress bars)."""

    on_url: Callable[[str], None] | None = None
    on_confirmed: Callable[[int], None] | None = None
    on_sent: Callable[[int], None] | None = None


class BlobMismatch(Exception):
    """The registry hashed the finished blob and it is not the manifest's sha256."""


class UploadGone(Exception):
    """404/410 on an upload URL: it expired or was terminated; create a new one."""


class TusClient:
    def __init__(
        self,
        http: RegistryHttp,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        limiter: BandwidthLimiter | None = None,
        endpoint: str = UPLOADS_PATH,
        floor_bps: int = PATCH_FLOOR_BPS,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk size must be positive")
        if floor_bps <= 0:
            raise ValueError("the floor rate must be positive")
        self.http = http
        self.chunk_size = chunk_size
        self.limiter = limiter
        self.endpoint = endpoint
        self.floor_bps = floor_bps

    def patch_deadline(self, n: int) -> float:
        """Seconds one PATCH of `n` bytes may take in all (see PATCH_FLOOR_BPS)."""
        return self.http.timeouts.total + n / self.floor_bps

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"Tus-Resumable": TUS_VERSION, **(extra or {})}

    def create(self, length: int, metadata: Mapping[str, str], *, retry: bool = True) -> str:
        """POST creation; returns the absolute upload URL."""
        resp = self.http.request(
            "POST",
            self.endpoint,
            ok=(201,),
            retry=retry,
            headers=self._headers(
                {"Upload-Length": str(length), "Upload-Metadata": encode_metadata(metadata)}
            ),
        )
        location = resp.headers.get("Location")
        resp.close()
        if not location:
            raise Unreachable("the registry sent an unreadable answer", hint="no Location")
        url = urljoin(self.http.url(self.endpoint), location)
        # The token and the file's bytes go to this URL: only on the registry's own origin.
        self.http.check_origin(url)
        return url

    def offset(self, url: str, *, retry: bool = True) -> int:
        """HEAD: the offset the registry has safely stored."""
        resp = self.http.request(
            "HEAD",
            url,
            retry=retry,
            ok=(200, 204, 404, 410),
            headers=self._headers({"Cache-Control": "no-store"}),
        )
        resp.close()
        if resp.status_code in (404, 410):
            raise UploadGone(url)
        value = header_offset(resp.headers.get("Upload-Offset"))
        if value is None:
            raise Unreachable("the registry sent an unreadable answer", hint="no Upload-Offset")
        return value

    def terminate(self, url: str) -> None:
        resp = self.http.request(
            "DELETE", url, ok=(204, 404, 410), headers=self._headers(), retry=False
        )
        resp.close()

    def upload(
        self,
        path: Path,
        size: int,
        metadata: Mapping[str, str],
        *,
        url: str | None = None,
        hooks: UploadHooks | None = None,
        stop: threading.Event | None = None,
        max_transient: int | None = None,
        sha256: str | None = None,
    ) -> str:
        """Send `path` (exactly `size` bytes), resuming `url` if given; return the URL.

        Transient failures (connection dropped, stall, 5xx, 429) are retried here with the
        HTTP layer's backoff, resuming from the server's offset each time; after
        `max_transient` consecutive ones without progress the last error is raised.

        `sha256` (hex) is the blob's digest from the manifest: a blob of at most two chunks
        is then sent from offset 0 in ONE PATCH whose Upload-Checksum is that digest, so the
        client does not hash those bytes again (the registry still checks them)."""
        hooks = hooks or UploadHooks()
        known = bytes.fromhex(sha256) if sha256 and is_sha256_hex(sha256.lower()) else None
        budget = max_transient if max_transient is not None else self.http.retry.attempts
        failures = 0
        bad_checksums = 0
        offset: int | None = None
        while True:
            if stop is not None and stop.is_set():
                raise UploadStopped("stopped")
            try:
                if url is None:
                    url = self.create(size, metadata, retry=False)  # retried here
                    offset = 0
                    if hooks.on_url is not None:
                        hooks.on_url(url)
                if offset is None:
                    offset = self.offset(url, retry=False)
                    if hooks.on_confirmed is not None:
                        hooks.on_confirmed(offset)
                if offset >= size and size > 0:
                    return url
                new_offset = self._patch(path, url, offset, size, hooks, stop, known)
            except UploadGone:
                log.info("upload %s is gone; starting a new one", url)
                url, offset = None, None
                continue
            except OutOfBounds as exc:
                if not isinstance(exc, TooSlow):
                    raise  # not a passing failure: retrying would do the same
                # a PATCH past its deadline: resumed from the registry's offset like a drop
                failures += 1
                offset = None
                if failures >= budget:
                    raise
                log.info("tus: %s; resuming from the registry's offset", exc)
                self._wait(self.http.backoff(failures), stop)
                continue
            except RegistryUnavailable as exc:
                failures += 1
                offset = None  # ask the server where it stands before the next try
                if failures >= budget:
                    raise
                delay = self.http.backoff(failures)
                retry_after = getattr(exc, "retry_after", None)
                if retry_after is not None:
                    delay = min(float(retry_after), self.http.retry.max_retry_after_s)
                log.debug("tus: %s; retrying in %.2fs", exc, delay)
                self._wait(delay, stop)
                continue
            if new_offset is None:  # checksum refused: resend the same chunk
                bad_checksums += 1
                if bad_checksums >= 3:
                    raise ChecksumFailed("the registry refused the same chunk's checksum 3 times")
                offset = None
                continue
            if new_offset > offset:
                failures = 0
                bad_checksums = 0
            offset = new_offset
            if hooks.on_confirmed is not None:
                hooks.on_confirmed(offset)
            if offset >= size:
                return url

    def _wait(self, delay: float, stop: threading.Event | None) -> None:
        if stop is not None:
            if stop.wait(delay):
                raise UploadStopped("stopped")
        else:
            self.http.sleep(delay)

    def _patch(
        self,
        path: Path,
        url: str,
        offset: int,
        size: int,
        hooks: UploadHooks,
        stop: threading.Event | None,
        known: bytes | None = None,
    ) -> int | None:
        """One PATCH; the new offset, None to resend (460), UploadGone, or raises."""
        whole = known is not None and offset == 0 and size <= 2 * self.chunk_size
        n = size if whole else min(self.chunk_size, size - offset)
        digest = known if whole and known is not None else chunk_digest(path, offset, n)
        body: FileSlice | bytes = (
            FileSlice(path, offset, n, limiter=self.limiter, on_bytes=hooks.on_sent, stop=stop)
            if n
            else b""  # an empty blob still needs one PATCH to complete it
        )
        try:
            resp = self.http.send_once(
                "PATCH",
                url,
                data=body,
                total=self.patch_deadline(n),  # the limiter's waits are not counted
                headers=self._headers(
                    {
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Checksum": "sha256 " + base64.b64encode(digest).decode("ascii"),
                    }
                ),
            )
        finally:
            if isinstance(body, FileSlice):
                body.close()
        status = resp.status_code
        if status in (200, 204):
            value = header_offset(resp.headers.get("Upload-Offset"))
            resp.close()
            if value is None:
                raise Unreachable("the registry sent an unreadable answer", hint="no offset")
            return value
        if status == 460:
            code, message, _ = error_message(resp)
            resp.close()
            if code == "blob_hash_mismatch" or (whole and chunk_digest(path, 0, n) != digest):
                # with the manifest's digest a mismatch is a changed file, unless our own
                # hash of the bytes agrees with it (then they were damaged on the way: resend)
                raise BlobMismatch(
                    "the uploaded bytes do not have the sha256 in the manifest "
                    "(was the file changed after it was added?)"
                )
            return None
        if status == 401:  # token expired mid-upload: log in again, then resume
            resp.close()
            self.http.drop_token()
            raise Unreachable("the registry asked us to sign in again")
        if status == 409:  # offset mismatch or another PATCH holds it: ask where we are
            code, _, _ = error_message(resp)
            resp.close()
            if code == "completed":
                return size
            raise Unreachable("upload offset conflict; resuming from the registry's offset")
        if status in (404, 410):
            resp.close()
            raise UploadGone(url)
        if status == 429 or status >= 500:
            _, message, _ = error_message(resp)
            wait = retry_after_seconds(resp.headers.get("Retry-After"))
            resp.close()
            raise Unreachable(
                f"the registry has a problem (HTTP {status}: {message})", retry_after=wait
            )
        code, message, details = error_message(resp)
        resp.close()
        raise ApiRefused(status, code, message, details)
