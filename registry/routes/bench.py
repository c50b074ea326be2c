"""Bench-only plain PUT handler: the `curl -T` baseline for bench/tus_bench.py.

Mounted only when RegistrySettings.enable_bench_put is set; never part of the public API.
It streams like tus PATCH (slices written in a worker thread while the next one arrives, fsync
at the end) but without hashing, claims or database work.
"""

from __future__ import annotations

import asyncio
import os
import secrets

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["bench"], include_in_schema=False)

SLICE = 4 * 1024 * 1024


class PutResult(BaseModel):
    size: int


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@router.put("/v1/bench/put")
async def bench_put(request: Request) -> PutResult:
    path = request.app.state.uploads_dir / f"bench-{secrets.token_hex(8)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
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
