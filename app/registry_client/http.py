"""The transport under every registry call: one requests.Session, timeouts, retries, auth.

Why a layer of its own: the queue must tell "the registry is unreachable" (retry later, by
itself) from "the registry says no" (stop and tell the user). Every failure leaves this module
as RegistryUnavailable or ApiRefused, never as a requests exception.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from app import __version__
from app.domain.errors import RegistryRefused, RegistryUnavailable
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

    def pair(self) -> tuple[float, float]:
        return (self.connect, self.read)


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
    if value.isdigit():
        return float(value)
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


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def error_message(resp: requests.Response) -> tuple[str, str, Any]:
    """(code, message, details) from the registry's error body, or a generic one."""
    try:
        body = resp.json()
        err = body["error"]
        return str(err.get("code", "")), str(err["message"]), err.get("details")
    except (ValueError, KeyError, TypeError):
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
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + path

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
        nonce = str(ch["nonce"])
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
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP exchange (re-login once on 401); transport failures → RegistryUnavailable."""
        hdrs = dict(headers or {})
        token = self.token() if auth else None
        for again in (False, True):
            if token is not None:
                hdrs["Authorization"] = f"Bearer {token}"
            try:
                resp = self.session.request(
                    method,
                    self.url(path),
                    headers=hdrs,
                    timeout=timeout or self.timeouts.pair(),
                    **kwargs,
                )
            except requests.Timeout as exc:
                raise RegistryUnavailable(
                    f"the registry at {self.base_url} did not answer in time",
                    hint="it will be retried",
                ) from exc
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise RegistryUnavailable(
                    f"cannot reach the registry at {self.base_url}",
                    hint="check the network; it will be retried",
                ) from exc
            except requests.RequestException as exc:
                raise RegistryUnavailable(
                    f"cannot talk to the registry at {self.base_url}: {type(exc).__name__}"
                ) from exc
            if resp.status_code == 401 and auth and not again and _replayable(kwargs):
                resp.close()
                token = self.token(refresh_from=token)
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

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


def parse_json_object(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
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
