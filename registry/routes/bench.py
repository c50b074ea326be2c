"""Bench-only plain PUT handler: the `curl -T` baseline for bench/tus_bench.py.

Mounted only when RegistrySettings.enable_bench_put is set; never part of the public API.
"""

from __future__ import annotations

import os
import secrets

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["bench"], include_in_schema=False)

FLUSH_AT = 4 * 1024 * 1024


class PutResult(BaseModel):
    size: int


@router.put("/v1/bench/put")
async def bench_put(request: Request) -> PutResult:
    """Stream the body to a temp file (same buffering and fsync as tus PATCH), then delete."""
    path = request.app.state.uploads_dir / f"bench-{secrets.token_hex(8)}"
    size = 0
    buf = bytearray()
    with path.open("wb") as fh:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) >= FLUSH_AT:
                data = bytes(buf)
                buf.clear()
                size += len(data)
                await run_in_threadpool(fh.write, data)
        if buf:
            size += len(buf)
            await run_in_threadpool(fh.write, bytes(buf))
        await run_in_threadpool(os.fsync, fh.fileno())
    path.unlink()
    return PutResult(size=size)
