"""A hostile registry on loopback: a real HTTP server (http.server in a thread) whose answers
each test chooses, to check what the client refuses. It answers sign-in (any signature) and
health by itself; every other route is the test's, else 404."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Route = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass

    def setup(self) -> None:
        super().setup()  # small answers go out at once (no Nagle + delayed-ACK 40 ms stalls)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _dispatch(self) -> None:
        registry = self.server.registry
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        registry.seen.append((self.command, self.path))
        path = urlsplit(self.path).path
        route = registry.routes.get((self.command, path))
        if route is None:
            route = next(
                (
                    r
                    for (m, prefix), r in registry.prefix_routes.items()
                    if m == self.command and path.startswith(prefix)
                ),
                None,
            )
        if route is not None:
            route(self)
        elif path == "/v1/health":
            self.send_json(200, {"status": "ok", "version": "hostile"})
        elif path == "/v1/auth/challenge":
            self.send_json(200, {"nonce": secrets.token_hex(32)})
        elif path == "/v1/auth/token":
            self.send_json(200, {"token": "hostile-token", "expiresIn": 900})
        else:
            self.send_json(404, {"error": {"code": "not_found", "message": "no such route"}})

    do_GET = do_POST = do_HEAD = do_PATCH = do_DELETE = _dispatch

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_raw(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def drip(self, every_s: float, *, headers_too: bool = False) -> None:
        """One byte every `every_s` seconds, forever (until the client or the test goes)."""
        stop = self.server.registry.stopping
        try:
            if headers_too:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if stop.wait(every_s):
                        return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b'{"items": [')
            self.wfile.flush()
            while not stop.wait(every_s):
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:
            pass  # the client hung up: what it should do

    def endless(self, chunk: bytes, total: int) -> None:
        """A chunked answer of `total` bytes (no Content-Length to refuse it by)."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            while sent < total and not self.server.registry.stopping.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.server.registry.hung_up.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: HostileRegistry


class HostileRegistry:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.prefix_routes: dict[tuple[str, str], Route] = {}
        self.seen: list[tuple[str, str]] = []
        self.stopping = threading.Event()
        self.hung_up = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.registry = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def route(self, method: str, path: str, fn: Route, *, prefix: bool = False) -> None:
        (self.prefix_routes if prefix else self.routes)[(method, path)] = fn

    def json_route(self, method: str, path: str, body: Any, status: int = 200) -> None:
        self.route(method, path, lambda h: h.send_json(status, body))

    def paths(self) -> list[str]:
        return [urlsplit(p).path for _m, p in self.seen]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def hostile_registry() -> Iterator[HostileRegistry]:
    registry = HostileRegistry()
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


def elapsed(since: float) -> float:
    return time.monotonic() - since
