"""Bench-only plain PUT handler: the `curl -T` baseline for bench/tus_bench.py.

Mounted only when RegistrySettings.enable_bench_put is set; never part of the public API.
It streams like tus PATCH (the body received straight into buffers when the server offers it,
slices written in a worker thread while the next one arrives, fsync at the end) but through the
page cache and without hashing, claims or database work.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from registry import rawbody

router = APIRouter(tags=["bench"], include_in_schema=False)

SLICE = 4 * 1024 * 1024


class PutResult(BaseModel):
    size: int


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _PageCacheSink:
    """registry.rawbody sink: two buffers, each full one written (page cache) by a thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.free = [bytearray(SLICE), bytearray(SLICE)]
        self.current: bytearray | None = None
        self.fill = 0
        self.size = 0
        self.wake: Any = None
        self.writes: list[asyncio.Future[None]] = []

    def set_wake(self, wake: Any) -> None:
        self.wake = wake

    def has_room(self) -> bool:
        return self.current is not None or bool(self.free)

    def get_buffer(self, limit: int) -> memoryview | None:
        if self.current is None:
            if not self.free:
                return None
            self.current, self.fill = self.free.pop(), 0
        return memoryview(self.current)[self.fill : min(SLICE, self.fill + limit)]

    def received(self, n: int) -> None:
        self.fill += n
        self.size += n
        if self.fill == SLICE:
            self.flush()

    def flush(self) -> None:
        buf, n = self.current, self.fill
        self.current = None
        if buf is None or not n:
            return
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, _write_all, self.fd, memoryview(buf)[:n])

        def give_back(_: asyncio.Future[None]) -> None:
            self.free.append(buf)
            if self.wake is not None:
                self.wake()

        done.add_done_callback(give_back)
        self.writes.append(done)


@router.put("/v1/bench/put")
async def bench_put(request: Request) -> PutResult:
    path = request.app.state.uploads_dir / f"bench-{secrets.token_hex(8)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    raw = request.scope.get("extensions", {}).get(rawbody.EXTENSION)
    if isinstance(raw, rawbody.RawBody) and raw.available():
        # Received the way tus PATCH bodies are (straight into the buffers), so curl -T
        # measures what this server can take in, not uvicorn's per-message overhead.
        sink = _PageCacheSink(fd)
        try:
            await raw.read_into(sink)
            sink.flush()
            await asyncio.gather(*sink.writes)
            await run_in_threadpool(os.fsync, fd)
        finally:
            os.close(fd)
            path.unlink()
        return PutResult(size=sink.size)
    size = written = 0
    parts: list[bytes] = []
    pending: asyncio.Future[None] | None = None
    try:
        async for chunk in request.stream():
            parts.append(chunk)
            size += len(chunk)
            if size - written >= SLICE:
                if pending is not None:
                    await pending
                data = b"".join(parts)
                parts = []
                written = size
                pending = asyncio.ensure_future(run_in_threadpool(_write_all, fd, data))
        if pending is not None:
            await pending
        if parts:
            await run_in_threadpool(_write_all, fd, b"".join(parts))
        await run_in_threadpool(os.fsync, fd)
    finally:
        os.close(fd)
        path.unlink()
    return PutResult(size=size)
