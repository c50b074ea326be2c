"""The transport under every registry call: one requests.Session, timeouts, retries, auth.

Why a layer of its own: the queue must tell "the registry is unreachable" (retry later, by
itself) from "the registry says no" (stop and tell the user). Every failure leaves this module
as RegistryUnavailable or ApiRefused, never as a requests exception.
"""

from __future__ import annotations

import base64
import email.utils
import heapq
import itertools
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app import __version__
from app.domain import boundedjson
from app.domain.errors import RegistryRefused, RegistryUnavailable
from app.domain.limits import MIB, describe_bytes
from app.domain.text import display_text
from app.registry_client.tokens import TokenCache

log = logging.getLogger(__name__)

AUTH_DOMAIN = b"contributor-desk-auth-v1\n"
UNREADABLE = "the registry sent an unreadable answer"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SignerFn = Callable[[], Ed25519PrivateKey]
SleepFn = Callable[[float], None]


class Unreachable(RegistryUnavailable):
    """Unavailable, with the server's Retry-After (seconds) when it sent one."""

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class OutOfBounds(RegistryUnavailable):
    """An answer outside what this client accepts: too slow in total, too large, redirected,
    or pointing at another host. Never retried (a registry that did it once will again)."""


class TooSlow(OutOfBounds):
    """The exchange ran past its total time (a registry dripping its bytes). Callers that can
    resume (a tus PATCH) retry from the server's state; the rest refuse it as OutOfBounds."""


class ApiRefused(RegistryRefused):
    """The registry answered 4xx: `status`, its error `code` and its message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"the registry refused: {message}")
        self.status = status
        self.code = code
        self.details = details


@dataclass(frozen=True, slots=True)
class Timeouts:
    """(connect, read) seconds: connect short (is anyone there?), read long enough for a
    registry that is hashing a finished blob."""

    connect: float = 5.0
    read: float = 60.0
    # The whole exchange (connect, request, answer; a tus PATCH gets its body's time on top):
    # per-read timeouts alone let a registry that drips a byte every few seconds hold a call
    # forever.
    total: float = 90.0

    def pair(self) -> tuple[float, float]:
        return (self.connect, self.read)


MAX_ANSWER_BYTES = 32 * MIB  # the largest answer body read (a 731-day usage window fits)
SLOWEST_SEND_BPS = 64 * 1024  # a request body adds len/this seconds to the total time
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,256}")


def header_offset(value: str | None) -> int | None:
    """A tus Upload-Offset/Upload-Length header as an int: ASCII digits only, at most 19 of
    them (an int64); None otherwise ('²' or 5,000 digits are not offsets)."""
    if value is None or not (value.isascii() and value.isdigit() and len(value) <= 19):
        return None
    return int(value)


class _Watch:
    """The connection one exchange of this thread uses, so the watchdog can cut it."""

    def __init__(self) -> None:
        self.conn: HTTPConnection | None = None
        self.done = False
        self.fired = False
        self.held = 0.0  # seconds the sender held itself back (bandwidth limit): not counted
        self.holding_since: float | None = None  # it is holding itself back right now
        self.applied = 0.0  # how far the watchdog has moved the deadline for it so far

    def cut(self) -> None:
        if self.done:
            return
        self.fired = True
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Watchdog:
    """One thread for every deadline of the process: when an exchange runs past its total
    time, its socket is shut down, which ends whatever read or write is blocked on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch, deadline: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._seq), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="registry-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is watch:  # earlier than what the thread waits for
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(30.0)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(min(wait, 1.0))
                    continue
                deadline, _, watch = heapq.heappop(self._heap)
                since = watch.holding_since
                push = watch.held - watch.applied  # the time it held itself back moves it
                if since is not None:  # still holding: look again a little later at least
                    push = max(push + time.monotonic() - since, HOLD_RECHECK_S)
                if push > 0:
                    watch.applied += push
                    heapq.heappush(self._heap, (deadline + push, next(self._seq), watch))
                    continue
                watch.cut()


_WATCHDOG = _Watchdog()
_current = threading.local()


HOLD_RECHECK_S = 0.25  # a deadline reached while its exchange holds back: looked at again


@contextmanager
def held_back() -> Iterator[None]:
    """While inside, the exchange running on this thread waits of its own accord (a request
    body held back by a bandwidth limit): that time does not count toward its total time."""
    watch = getattr(_current, "watch", None)
    if watch is None:
        yield
        return
    start = time.monotonic()
    watch.holding_since = start
    try:
        yield
    finally:
        watch.held += time.monotonic() - start  # before holding_since goes: never undercounted
        watch.holding_since = None


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.conn = self
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.conn = self
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1  # not a port: matches no registry
    return scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter; Retry-After wins when the server sends it."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2**attempt)))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After (delta-seconds or HTTP-date) into seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value[:12])  # capped by RetryPolicy.max_retry_after_s anyway
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


SEND_BUFFER = 4 * 1024 * 1024


def send_buffer_options(
    wmem_max_file: str = "/proc/sys/net/core/wmem_max",
) -> list[tuple[int, int, int]]:
    """SO_SNDBUF = SEND_BUFFER, unless the system would cap it below that: on Linux an
    explicit size is capped by net.core.wmem_max (often 208 KiB) and turns autotuning
    (which may grow to 4 MiB) off, so it would make things worse there."""
    try:
        with open(wmem_max_file) as fh:
            if int(fh.read().strip() or 0) < SEND_BUFFER:
                return []
    except (OSError, ValueError):
        pass  # not Linux: the size is taken as asked
    return [(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)]


class _BigBlockAdapter(HTTPAdapter):
    """urllib3 sends file-like bodies in `blocksize` pieces; 16 KiB costs throughput. A 4 MiB
    socket send buffer lets each 1 MiB block go out without waiting for the peer to drain a
    small one (fewer wake-ups on both sides: the 1 GB mixed upload went from ~183 to
    ~210 MiB/s on loopback, with less CPU on client and registry)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = 1024 * 1024
        kwargs["socket_options"] = [
            *HTTPConnection.default_socket_options,
            *send_buffer_options(),
        ]
        super().init_poolmanager(*args, **kwargs)
        # connections that tell the deadline watchdog which socket to cut
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def error_message(resp: requests.Response) -> tuple[str, str, Any]:
    """(code, message, details) from the registry's error body, or a generic one."""
    try:
        body = boundedjson.loads(resp.content)
        err = body["error"]
        message = display_text(str(err["message"])[:2000], newlines=True)
        return display_text(str(err.get("code", ""))[:200]), message, err.get("details")
    except (ValueError, KeyError, TypeError, AttributeError, RegistryUnavailable):
        reason = resp.reason or "error"
        return f"http_{resp.status_code}", f"HTTP {resp.status_code} {reason}", None


class RegistryHttp:
    """One session to one registry; thread-safe for the queue's worker threads."""

    def __init__(
        self,
        base_url: str,
        signer: SignerFn | None = None,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        pool_size: int = 8,
        sleep: SleepFn = time.sleep,
        rng: random.Random | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._shared_tokens = tokens
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._signer = signer
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.session = requests.Session()
        adapter = _BigBlockAdapter(pool_connections=2, pool_maxsize=max(2, pool_size))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"contributor-desk/{__version__}"
        self.session.trust_env = False  # a loopback registry must not go through a proxy
        self._token: str | None = None  # memory only: never logged, never written
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        """The absolute URL of `path`; an absolute URL only on the registry's own origin
        (scheme, host and port), so the token and the file bytes never go anywhere else."""
        if "://" in path:
            self.check_origin(path)
            return path
        if not path.startswith("/"):
            raise OutOfBounds(UNREADABLE, hint=f"not a path: {display_text(path[:100])}")
        return self.base_url + path

    def check_origin(self, url: str) -> None:
        if origin(url) != origin(self.base_url):
            raise OutOfBounds(
                f"the registry at {self.base_url} pointed to another host "
                f"({display_text(url[:200])}); nothing was sent there"
            )

    # -- auth ------------------------------------------------------------------------------

    def _login(self) -> str:
        if self._signer is None:
            raise RegistryRefused("this registry call needs your identity, and none is loaded")
        key = self._signer()
        pub = public_hex(key)
        # retry=False: the caller's request() loop retries the whole exchange.
        ch = self.json(
            "POST", "/v1/auth/challenge", json={"publicKey": pub}, auth=False, retry=False
        )
        nonce = ch.get("nonce")
        if not isinstance(nonce, str) or not NONCE_PATTERN.fullmatch(nonce):
            raise RegistryUnavailable(UNREADABLE, hint="no usable nonce in the sign-in challenge")
        sig = key.sign(AUTH_DOMAIN + nonce.encode("ascii"))
        body = {"publicKey": pub, "nonce": nonce, "signature": base64.b64encode(sig).decode()}
        tok = self.json("POST", "/v1/auth/token", json=body, auth=False, retry=False)
        token = tok.get("token")
        if not isinstance(token, str) or not token:
            raise RegistryUnavailable(UNREADABLE, hint="no token in the login answer")
        return token

    def token(self, *, refresh_from: str | None = None) -> str:
        """The cached token; a new one if none or if `refresh_from` is the stale one. With a
        shared TokenCache, a token another client of this process got for the same registry
        and key is used first."""
        with self._token_lock:
            if self._token is None or self._token == refresh_from:
                shared = self._shared_tokens
                pub = public_hex(self._signer()) if shared and self._signer else None
                known = shared.get(self.base_url, pub) if shared and pub else None
                if known is not None and known != refresh_from:
                    self._token = known
                else:
                    self._token = self._login()
                    if shared and pub:
                        shared.put(self.base_url, pub, self._token)
            return self._token

    def drop_token(self) -> None:
        with self._token_lock:
            self._token = None

    def backoff(self, attempt: int) -> float:
        return self.retry.backoff(attempt, self._rng)

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    # -- requests --------------------------------------------------------------------------

    def send_once(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | None = None,
        total: float | None | bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP exchange (re-login once on 401); transport failures → RegistryUnavailable.

        The whole exchange, answer body included, must end within `total` seconds (True:
        Timeouts.total, plus time to send a request body; None: per-read timeouts only). Time
        the sender holds itself back (held_back) is not counted; past the deadline the
        exchange is cut and TooSlow raised. The body is read here, at most
        MAX_ANSWER_BYTES, unless the caller asks for stream=True. Redirects are never
        followed."""
        hdrs = dict(headers or {})
        url = self.url(path)
        token = self.token() if auth else None
        caller_streams = bool(kwargs.pop("stream", False))
        if total is True:
            data = kwargs.get("data")
            sent = len(data) if isinstance(data, bytes | bytearray) else 0
            total = self.timeouts.total + sent / SLOWEST_SEND_BPS
        limit = float(total) if total else None
        for again in (False, True):
            if token is not None:
                hdrs["Authorization"] = f"Bearer {token}"
            watch = _Watch()
            try:
                if limit is not None:
                    _current.watch = watch
                    _WATCHDOG.add(watch, time.monotonic() + limit)
                resp = self.session.request(
                    method,
                    url,
                    headers=hdrs,
                    timeout=timeout or self.timeouts.pair(),
                    stream=True,
                    allow_redirects=False,
                    **kwargs,
                )
                if not caller_streams:
                    _read_answer(resp, method)
            except OutOfBounds:
                raise
            except (requests.RequestException, OSError) as exc:
                if watch.fired:
                    raise TooSlow(
                        f"the registry at {self.base_url} did not finish its answer "
                        f"within {limit or 0:.0f} s",
                        hint="a registry that slow is not waited for",
                    ) from None
                raise self._transport_error(exc) from exc
            finally:
                watch.done = True
                _current.watch = None
            if 300 <= resp.status_code < 400:
                where = resp.headers.get("Location", "")
                resp.close()
                raise OutOfBounds(
                    f"the registry at {self.base_url} answered {method} {path.split('?')[0]} "
                    f"with a redirect (HTTP {resp.status_code} to {display_text(where[:200])}); "
                    "redirects are not followed"
                )
            if resp.status_code == 401 and auth and not again and _replayable(kwargs):
                resp.close()
                token = self.token(refresh_from=token)
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _transport_error(self, exc: Exception) -> RegistryUnavailable:
        """A transport failure as the error the queue understands (retried later)."""
        if isinstance(exc, requests.Timeout):
            return RegistryUnavailable(
                f"the registry at {self.base_url} did not answer in time",
                hint="it will be retried",
            )
        if isinstance(
            exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError | OSError
        ):
            return RegistryUnavailable(
                f"cannot reach the registry at {self.base_url}",
                hint="check the network; it will be retried",
            )
        return RegistryUnavailable(
            f"cannot talk to the registry at {self.base_url}: {type(exc).__name__}"
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        retry: bool = True,
        ok: tuple[int, ...] = (200, 201, 204),
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """An exchange with retries for transient failures; 4xx → ApiRefused."""
        attempts = self.retry.attempts if retry else 1
        last: RegistryUnavailable | None = None
        for attempt in range(attempts):
            wait: float | None = None
            try:
                resp = self.send_once(method, path, auth=auth, headers=headers, **kwargs)
            except OutOfBounds:
                raise
            except RegistryUnavailable as exc:
                last = exc
            else:
                if resp.status_code in ok:
                    return resp
                if resp.status_code not in RETRY_STATUSES:
                    raise self.refused(resp)
                _, message, _ = error_message(resp)
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                if resp.status_code == 429:
                    last = Unreachable(
                        "the registry asks us to slow down (rate limited)",
                        hint="it will be retried",
                        retry_after=wait,
                    )
                else:
                    last = Unreachable(
                        f"the registry has a problem (HTTP {resp.status_code}: {message})",
                        hint="it will be retried",
                        retry_after=wait,
                    )
                resp.close()
            if attempt + 1 >= attempts:
                break
            delay = self.retry.backoff(attempt, self._rng)
            if wait is not None:
                delay = min(max(wait, 0.0), self.retry.max_retry_after_s)
            log.debug("%s %s failed (%s); retry in %.2fs", method, path, last, delay)
            self._sleep(delay)
        assert last is not None
        raise last

    def refused(self, resp: requests.Response) -> ApiRefused:
        code, message, details = error_message(resp)
        resp.close()
        return ApiRefused(resp.status_code, code, message, details)

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A JSON exchange; a 2xx that is not a JSON object is 'unreadable' (unavailable)."""
        resp = self.request(method, path, **kwargs)
        return parse_json_object(resp)


def _read_answer(resp: requests.Response, method: str) -> None:
    """Read the answer body into resp (as requests would), refusing more than
    MAX_ANSWER_BYTES: a registry cannot make the client hold a 300 MB answer."""
    too_big = OutOfBounds(
        f"the registry's answer is larger than {describe_bytes(MAX_ANSWER_BYTES)}",
        hint="an answer that large is not read",
    )
    declared = resp.headers.get("Content-Length", "")
    if method != "HEAD" and declared.isascii() and declared.isdigit():
        if len(declared) > 12 or int(declared) > MAX_ANSWER_BYTES:
            resp.close()
            raise too_big
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            resp.close()
            raise too_big
        chunks.append(chunk)
    resp._content = b"".join(chunks)


def parse_json_object(resp: requests.Response) -> dict[str, Any]:
    try:
        body = boundedjson.loads(resp.content)
    except ValueError:
        raise RegistryUnavailable(
            UNREADABLE, hint=f"HTTP {resp.status_code} without a JSON body"
        ) from None
    if not isinstance(body, dict):
        raise RegistryUnavailable(UNREADABLE, hint="expected a JSON object")
    return body


def _replayable(kwargs: Mapping[str, Any]) -> bool:
    """A streamed body (file slice) cannot be replayed after a 401."""
    data = kwargs.get("data")
    return data is None or isinstance(data, bytes | bytearray | str)
