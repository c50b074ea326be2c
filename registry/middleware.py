"""Pure ASGI middleware: JSON access log, request body limits and content-type checks.

Pure ASGI (not BaseHTTPMiddleware) so tus PATCH bodies stream through untouched and fast.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    bodies that are not JSON."""

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
        declared = int(length_header) if length_header and length_header.isdigit() else None
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
        if declared is not None:
            await self.app(scope, receive, send)  # the server enforces Content-Length
            return
        # Chunked body of unknown length: buffer up to the limit, then replay it to the app.
        buffered: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                buffered.append(message)
                break
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                await _send_problem(
                    send,
                    413,
                    "payload_too_large",
                    f"The request body is larger than the limit of {self.max_body_bytes} bytes.",
                )
                return
            buffered.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)


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
