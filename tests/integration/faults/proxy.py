"""A fault-injecting HTTP/1.1 relay on loopback, in front of the real registry.

It relays one request at a time per connection (so keep-alive connections get faults too) and,
for requests matching a rule, instead: drops the connection part-way through the request body,
stalls without answering, or answers a raw status (500/503/429 with Retry-After, or garbage).
Only what the app's client sends is supported: Content-Length request bodies.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Fault:
    kind: str  # drop | stall | answer
    count: int
    method: str | None = None
    path_prefix: str = ""
    after_bytes: int = 0  # drop: forward this much of the body first
    seconds: float = 0.0  # stall
    status: int = 503  # answer
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"error":{"code":"injected","message":"injected fault","details":null}}'
    applied: int = 0


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    fault: str  # "" when relayed


def _read_head(sock: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    while b"\r\n\r\n" not in buf:
        try:
            data = sock.recv(65536)
        except OSError:
            return None, b""
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    out: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            out[k.strip().lower()] = v.strip()
    return lines[0], out


def _forward(src: socket.socket, dst: socket.socket | None, buf: bytes, n: int) -> bytes:
    """Send n body bytes from buf+src to dst (None: discard); return what is left in buf."""
    take = buf[:n]
    if dst is not None:
        dst.sendall(take)
    left = n - len(take)
    buf = buf[len(take) :]
    while left > 0:
        data = src.recv(min(left, 1 << 20))
        if not data:
            raise ConnectionError("peer closed mid-body")
        if dst is not None:
            dst.sendall(data)
        left -= len(data)
    return buf


def _relay_chunked(src: socket.socket, dst: socket.socket, buf: bytes) -> bytes:
    while True:
        while b"\r\n" not in buf:
            data = src.recv(65536)
            if not data:
                raise ConnectionError("closed in chunked body")
            buf += data
        line, _, buf = buf.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        dst.sendall(line + b"\r\n")
        buf = _forward(src, dst, buf, size + 2)
        if size == 0:
            return buf


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.seen: list[Seen] = []
        self.patch_body_bytes = 0
        self._closed = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def retarget(self, port: int) -> None:
        self.target = (self.target[0], port)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for c in list(self._conns):
            try:
                c.close()
            except OSError:
                pass

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.count <= 0:
                    continue
                if f.method is not None and f.method != method:
                    continue
                if not path.startswith(f.path_prefix):
                    continue
                f.count -= 1
                f.applied += 1
                return f
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server: socket.socket | None = None
        buf = b""
        try:
            while True:
                head, buf = _read_head(client, buf)
                if head is None:
                    return
                start, headers = _headers(head)
                method, path = start.split(" ")[0], start.split(" ")[1]
                length = int(headers.get("content-length", "0"))
                fault = self._take(method, path)
                with self._lock:
                    self.seen.append(Seen(method, path, fault.kind if fault else ""))
                if fault is not None and fault.kind == "stall":
                    time.sleep(fault.seconds)
                    return
                if fault is not None and fault.kind == "answer":
                    buf = _forward(client, None, buf, length)
                    hdrs = {"Content-Type": "application/json", **fault.headers}
                    hdrs["Content-Length"] = str(len(fault.body))
                    hdrs["Connection"] = "close"
                    extra = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
                    status_line = f"HTTP/1.1 {fault.status} Injected\r\n"
                    client.sendall((status_line + extra + "\r\n").encode("latin-1") + fault.body)
                    return
                if server is None:
                    server = socket.create_connection(self.target, timeout=120)
                    self._conns.append(server)
                server.sendall(head)
                if fault is not None and fault.kind == "drop":
                    _forward(client, server, buf, min(fault.after_bytes, length))
                    return
                if method == "PATCH":
                    with self._lock:
                        self.patch_body_bytes += length
                buf = _forward(client, server, buf, length)
                self._relay_response(server, client, method)
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            for s in (client, server):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _relay_response(self, server: socket.socket, client: socket.socket, method: str) -> None:
        rhead, rbuf = _read_head(server, b"")
        if rhead is None:
            raise ConnectionError("server closed")
        status_line, rheaders = _headers(rhead)
        status = int(status_line.split(" ")[1])
        client.sendall(rhead)
        if method == "HEAD" or status in (204, 304) or status < 200:
            rest = rbuf
        elif "content-length" in rheaders:
            rest = _forward(server, client, rbuf, int(rheaders["content-length"]))
        elif rheaders.get("transfer-encoding", "").lower() == "chunked":
            rest = _relay_chunked(server, client, rbuf)
        else:
            raise ConnectionError("response without length")
        if rest:
            raise ConnectionError("unexpected bytes after a response")
        if rheaders.get("connection", "").lower() == "close":
            raise ConnectionError("server closed the connection")
