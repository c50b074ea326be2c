"""Bodies received straight into the app's buffers (registry/rawbody.py) under real uvicorn,
and tus PATCHes through it against the real registry process (unaligned sizes, checksums,
a refused chunk and a client that goes away mid-body, all on kept-alive connections)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from registry import rawbody
from registry.blobstore import FileBlobStore
from registry.rawbody_http import RawBodyHttpToolsProtocol, reads_into_buffer
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata
from tests.support.registry_server import RegistryProcess


class SmallBuffers:
    """A BodySink of `count` buffers of `size` bytes, each freed a little later (as worker
    threads would), so the reader has to pause and resume the socket."""

    def __init__(self, size: int, count: int) -> None:
        self.size = size
        self.free = [bytearray(size) for _ in range(count)]
        self.current: bytearray | None = None
        self.fill = 0
        self.out = bytearray()
        self.wake: Any = None
        self.waits = 0

    def set_wake(self, wake: Any) -> None:
        self.wake = wake

    def has_room(self) -> bool:
        return self.current is not None or bool(self.free)

    def get_buffer(self, limit: int) -> memoryview | None:
        if self.current is None:
            if not self.free:
                return None
            self.current, self.fill = self.free.pop(), 0
        return memoryview(self.current)[self.fill : min(self.size, self.fill + limit)]

    def received(self, n: int) -> None:
        assert self.current is not None
        self.fill += n
        if self.fill == self.size:
            self.flush()

    def flush(self) -> None:
        if self.current is None:
            return
        buf, n = self.current, self.fill
        self.current = None
        self.out += buf[:n]
        if not self.free:
            self.waits += 1

        def give_back() -> None:
            self.free.append(buf)
            if self.wake is not None:
                self.wake()

        asyncio.get_running_loop().call_later(0.001, give_back)


SEEN: list[dict[str, Any]] = []


async def sink_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    raw = scope.get("extensions", {}).get(rawbody.EXTENSION)
    record: dict[str, Any] = {"raw": False}
    if raw is not None and raw.available():
        sink = SmallBuffers(7_000, 2)
        record["complete"] = await raw.read_into(sink)
        sink.flush()
        body = bytes(sink.out)
        record.update(raw=True, waits=sink.waits)
    else:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
    record["size"] = len(body)
    record["sha256"] = hashlib.sha256(body).hexdigest()
    SEEN.append(record)
    answer = f"{record['raw']} {len(body)} {record['sha256']}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(params=["asyncio", "uvloop"])
def sink_server(request: pytest.FixtureRequest) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(
        sink_app,
        http=RawBodyHttpToolsProtocol,
        loop=request.param,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    SEEN.clear()
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _request(body: bytes, path: str = "/sink") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _read_answers(conn: socket.socket, count: int) -> list[str]:
    data = b""
    answers: list[str] = []
    while len(answers) < count:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {answers}"
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            if len(rest) < length:
                break
            answers.append(rest[:length].decode())
            data = rest[length:]
    return answers


def test_bodies_land_whole_and_the_connection_keeps_serving(sink_server: int) -> None:
    """Early bytes (sent with the headers), pauses while every buffer is busy, a small body,
    and two pipelined requests after a raw body: every body arrives byte for byte, and the
    HTTP parser picks up the next request right after each body."""
    big = os.urandom(300_001)
    small = b"0123456789"
    other = os.urandom(50_000)
    with socket.create_connection(("127.0.0.1", sink_server)) as conn:
        first = _request(big)
        conn.sendall(first[: len(first) - len(big) + 100])  # headers + 100 body bytes
        time.sleep(0.05)
        conn.sendall(first[len(first) - len(big) + 100 :])
        assert _read_answers(conn, 1) == [f"True {len(big)} {hashlib.sha256(big).hexdigest()}"]
        conn.sendall(_request(small))
        assert _read_answers(conn, 1)[0].endswith(hashlib.sha256(small).hexdigest())
        conn.sendall(_request(other) + _request(big))
        answers = _read_answers(conn, 2)
    # The pipelined ones may come whole with the headers (then through receive()).
    assert [a.split(" ", 1)[1] for a in answers] == [
        f"{len(other)} {hashlib.sha256(other).hexdigest()}",
        f"{len(big)} {hashlib.sha256(big).hexdigest()}",
    ]
    assert SEEN[0]["waits"] > 0  # the socket really was paused for want of a buffer
    assert all(r.get("complete", True) for r in SEEN)


def test_only_transports_that_read_into_the_buffer_get_the_extension() -> None:
    """The Windows proactor reads ahead into a buffer of its own (it could hand the body
    reader bytes of the next request), TLS transports decrypt into theirs."""

    def transport_from(module: str) -> Any:
        return type("Transport", (), {"__module__": module})()

    assert reads_into_buffer(transport_from("asyncio.selector_events"))
    assert reads_into_buffer(transport_from("uvloop.loop"))
    assert not reads_into_buffer(transport_from("asyncio.proactor_events"))
    assert not reads_into_buffer(transport_from("asyncio.sslproto"))


def test_expect_100_continue_is_answered(sink_server: int) -> None:
    body = os.urandom(100_000)
    head = (
        f"POST /sink HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", sink_server), timeout=10) as conn:
        conn.sendall(head.encode())
        assert conn.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sendall(body)
        assert _read_answers(conn, 1) == [f"True {len(body)} {hashlib.sha256(body).hexdigest()}"]


def test_a_client_that_goes_away_mid_body_leaves_what_arrived(sink_server: int) -> None:
    body = os.urandom(200_000)
    with socket.create_connection(("127.0.0.1", sink_server)) as conn:
        request = _request(body)
        conn.sendall(request[: len(request) - 120_000])
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while not SEEN:
        assert time.monotonic() < deadline, "the app never finished"
        time.sleep(0.01)
    assert SEEN[0]["raw"] is True
    assert SEEN[0]["complete"] is False
    assert SEEN[0]["size"] == len(body) - 120_000
    assert SEEN[0]["sha256"] == hashlib.sha256(body[: len(body) - 120_000]).hexdigest()


# -- the registry ---------------------------------------------------------------------------

MiB = 1024 * 1024


@pytest.fixture
def live_registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    with RegistryProcess(f"sqlite:///{tmp_path / 'r.sqlite3'}", tmp_path / "blobs") as proc:
        yield proc


def _tus_upload_url(base: str, who: Contributor, data: bytes) -> str:
    with httpx.Client(base_url=base) as http:
        who.sign_in(http)  # type: ignore[arg-type]
        body = contribution_body(who.key, {"blob.bin": data}, registry=base)
        r = http.post("/v1/contributions", json=body, headers=who.headers)
        assert r.status_code == 201, r.text
        r = http.post(
            "/v1/uploads/",
            headers={
                **who.headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(len(data)),
                "Upload-Metadata": tus_metadata(hashlib.sha256(data).hexdigest(), r.json()["id"]),
            },
        )
        assert r.status_code == 201, r.text
        return httpx.URL(r.headers["location"]).path


def _patch(
    conn: http.client.HTTPConnection,
    who: Contributor,
    path: str,
    offset: int,
    data: bytes,
    **h: str,
) -> http.client.HTTPResponse:
    conn.request(
        "PATCH",
        path,
        body=data,
        headers={
            **who.headers,
            "Tus-Resumable": "1.0.0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
            **h,
        },
    )
    resp = conn.getresponse()
    resp.read()
    return resp


def _sha256_header(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_tus_patches_of_odd_sizes_with_checksums(live_registry: RegistryProcess) -> None:
    """PATCH boundaries off the block and buffer sizes, larger than all staging buffers
    together, a refused chunk in between: the stored blob is exactly the bytes accepted."""
    data = os.urandom(17 * MiB + 12_345)
    who = Contributor()
    path = _tus_upload_url(live_registry.base_url, who, data)
    cuts = [0, 4097, 4 * MiB + 3, 4 * MiB + 70_000, 17 * MiB + 1, len(data)]
    conn = http.client.HTTPConnection("127.0.0.1", live_registry.port, timeout=60)
    for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        if i in (0, 2):  # from offset 0 one hash serves blob and chunk: refused all the same
            bad = _patch(conn, who, path, a, data[a:b], **{"Upload-Checksum": _sha256_header(b"")})
            assert bad.status == 460
        r = _patch(conn, who, path, a, data[a:b], **{"Upload-Checksum": _sha256_header(data[a:b])})
        assert r.status == 204, (i, r.status, r.read())
        assert r.getheader("Upload-Offset") == str(b)
    conn.close()
    stored = FileBlobStore(live_registry.blobs_dir)
    try:
        with stored.open(hashlib.sha256(data).hexdigest()) as fh:
            assert fh.read() == data
    finally:
        stored.close()


def test_tus_patch_cut_off_mid_body_keeps_what_arrived(live_registry: RegistryProcess) -> None:
    data = os.urandom(9 * MiB + 333)
    who = Contributor()
    path = _tus_upload_url(live_registry.base_url, who, data)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{live_registry.port}\r\n"
        f"Authorization: Bearer {who.token}\r\nTus-Resumable: 1.0.0\r\n"
        "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    sent = 5 * MiB + 17
    with socket.create_connection(("127.0.0.1", live_registry.port)) as conn:
        conn.sendall(head + data[:sent])
        time.sleep(0.5)
    tus_headers = {**who.headers, "Tus-Resumable": "1.0.0"}
    deadline = time.monotonic() + 10
    while True:  # the server sees the disconnect, keeps what arrived, answers HEAD from it
        offset = int(
            httpx.head(f"{live_registry.base_url}{path}", headers=tus_headers).headers[
                "upload-offset"
            ]
        )
        if offset == sent or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert offset == sent
    conn2 = http.client.HTTPConnection("127.0.0.1", live_registry.port, timeout=60)
    r = _patch(conn2, who, path, offset, data[offset:])
    conn2.close()
    assert r.status == 204
    stored = FileBlobStore(live_registry.blobs_dir)
    try:
        with stored.open(hashlib.sha256(data).hexdigest()) as fh:
            assert fh.read() == data
    finally:
        stored.close()


def test_bench_put_takes_the_whole_body(tmp_path: Path) -> None:
    """The `curl -T` baseline of the benches receives the same way (and keeps serving)."""
    with RegistryProcess(
        f"sqlite:///{tmp_path / 'r.sqlite3'}",
        tmp_path / "blobs",
        extra_args=("--enable-bench-put",),
    ) as proc:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=60)
        for size in (9 * MiB + 5, 100):
            conn.request("PUT", "/v1/bench/put", body=os.urandom(size))
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == f'{{"size":{size}}}'.encode()
        conn.close()
        assert not list((tmp_path / "blobs" / ".uploads").glob("bench-*"))
