"""Pure ASGI middleware: JSON access log, request body limits and content-type checks.

Pure ASGI (not BaseHTTPMiddleware) so tus PATCH bodies stream through untouched and fast.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain import boundedjson
from registry.tus import parse_uint

access_log = logging.getLogger("registry.access")

# Bodies under these prefixes are raw bytes (tus PATCH, bench PUT) and are not size-limited here.
RAW_BODY_PREFIXES = ("/v1/uploads", "/v1/bench/")
BODY_METHODS = {"POST", "PUT", "PATCH"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _send_problem(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for JSON bodies over the limit (by Content-Length or while streaming), 415 for
    bodies that are not JSON, 400 for JSON outside the limits of app.domain.boundedjson
    (too deep, NaN/Infinity, numbers out of range) or with a NUL character in any string.

    The body is read here (it is at most max_body_bytes) and replayed to the app, so the checks
    hold for every route and both databases alike (PostgreSQL cannot store NUL in text)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(RAW_BODY_PREFIXES):
            await self.app(scope, receive, send)
            return
        length_header = _header(scope, b"content-length")
        declared = parse_uint(length_header)
        if declared is not None and declared > self.max_body_bytes:
            await _send_problem(
                send,
                413,
                "payload_too_large",
                f"The request body is larger than the limit of {self.max_body_bytes} bytes.",
            )
            return
        ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        has_body = declared != 0 and (declared is not None or _header(scope, b"transfer-encoding"))
        if has_body and not (ctype == "application/json" or ctype.endswith("+json")):
            await _send_problem(
                send, 415, "unsupported_media_type", "Send the request body as application/json."
            )
            return
        # Buffer the body (up to the limit), check it, then replay it to the app.
        buffered: list[Message] = []
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                buffered.append(message)
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body_bytes:
                await _send_problem(
                    send,
                    413,
                    "payload_too_large",
                    f"The request body is larger than the limit of {self.max_body_bytes} bytes.",
                )
                return
            chunks.append(chunk)
            buffered.append(message)
            if not message.get("more_body", False):
                break
        problem = json_body_problem(b"".join(chunks))
        if problem is not None:
            await _send_problem(send, 400, *problem)
            return

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)


# Only a body that may hold a number out of range (a 3-digit exponent, a 300-digit run) or a
# NaN/Infinity constant is parsed here (the app parses it anyway): ordinary bodies pass on
# substring scans alone, over a copy with every digit written as 0.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_SUSPECT = (b"0e000", b"0e+000", b"0e-000", b"0" * 300)


def _may_hold_bad_number(body: bytes) -> bool:
    if b"NaN" in body or b"Infinity" in body:
        return True
    folded = body.translate(_DIGITS_AS_ZERO)
    return any(s in folded for s in _SUSPECT)


def json_body_problem(body: bytes) -> tuple[str, str] | None:
    """(code, message) if a JSON body breaks the input limits, None if it may go on (bodies
    that are not JSON at all are left to the app's own 400)."""
    if not body:
        return None
    if boundedjson.too_deep(body):
        return (
            "json_too_deep",
            f"The JSON body is nested deeper than {boundedjson.MAX_JSON_DEPTH} levels.",
        )
    suspect_nul = b"\\u0000" in body
    if not suspect_nul and not _may_hold_bad_number(body):
        return None
    try:
        value = boundedjson.loads(body)
    except boundedjson.JsonLimitError as exc:
        return ("malformed_json", f"The request body is not acceptable JSON: {exc}.")
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: the app answers its own malformed_json
    if suspect_nul and boundedjson.has_nul(value):
        return ("invalid_characters", "Strings must not contain the NUL character (U+0000).")
    return None


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only processes of this machine can reach the server.
    (Asked for every request's Host header: the few distinct answers are kept.)"""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The host part of a Host header (`[::1]:8750` -> `::1`, `a:80` -> `a`)."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class TextGuardMiddleware:
    """400 for a NUL character in the path or the query string, on every route: ids and
    filters reach the database, and PostgreSQL cannot hold NUL in text (SQLite can), so both
    refuse it here alike. With loopback_hosts_only, also 400 for a Host header that does not
    name a loopback address (the registry's URL then comes from Host, so it must be local)."""

    def __init__(self, app: ASGIApp, loopback_hosts_only: bool = False) -> None:
        self.app = app
        self.loopback_hosts_only = loopback_hosts_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.loopback_hosts_only and not is_loopback(
                _host_name(_header(scope, b"host") or "")
            ):
                await _send_problem(
                    send,
                    400,
                    "bad_host",
                    "This registry has no public URL configured and answers only on loopback "
                    "addresses; call it at 127.0.0.1 or localhost.",
                )
                return
            query: bytes = scope.get("query_string", b"")
            if "\x00" in scope["path"] or b"\x00" in query or b"%00" in query:
                await _send_problem(
                    send,
                    400,
                    "invalid_characters",
                    "The path and query must not contain the NUL character (%00).",
                )
                return
        await self.app(scope, receive, send)


class AccessLogMiddleware:
    """One JSON line per request: method, path, status, duration, principal prefix. Never the
    query string's secrets or any header: tokens must not reach logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_holder: dict[str, int] = {"status": 500}
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            principal = state.get("principal")
            fpr = getattr(principal, "fingerprint", None)
            record = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status_holder["status"],
                "durationMs": round((time.perf_counter() - start) * 1000, 2),
                "principal": fpr[:12] if isinstance(fpr, str) else None,
            }
            access_log.info(json.dumps(record, separators=(",", ":")))
