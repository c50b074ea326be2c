"""Request bodies received straight into the application's buffers, under uvicorn.

uvicorn's httptools protocol hands a body to the app in ASGI messages of at most ~64 KiB: each
one is read into a fresh bytes object, appended to a bytearray, copied again into the message,
and costs an event-loop round trip plus a pause/resume of the transport. For a 1 GiB tus upload
that was ~1.4 CPU seconds of the server's (most of it system time) before any hashing or
writing; reading the same bytes with an asyncio BufferedProtocol into one reused buffer costs
~0.2 s (bench/README.md, tus_bench.py).

`registry.rawbody_http.RawBodyHttpToolsProtocol` (used by `contributor-registry serve` when
httptools is installed) is uvicorn's httptools protocol plus one ASGI extension on requests
that declare a Content-Length: ``scope["extensions"][EXTENSION]`` is a `RawBody`. An app that
has not called `receive()` yet may call `await raw.read_into(sink)`: the connection's transport
is switched to a BufferedProtocol that lets the kernel copy the rest of the body (never a byte
past Content-Length) directly into the buffers `sink` offers; afterwards the HTTP protocol gets
the connection back with a fresh parser, as if the body had been received the usual way. An app
that does not use the extension sees uvicorn unchanged; servers without it (the test client,
other ASGI servers) simply do not offer it, and callers fall back to `receive()`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import ClientDisconnect, Request

if TYPE_CHECKING:  # the protocol needs httptools; this module must import without it
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from registry.rawbody_http import RawBodyHttpToolsProtocol

EXTENSION = "contributor-registry.raw_body"


class BodySink(Protocol):
    """Where a raw body goes. Called on the event loop only."""

    def get_buffer(self, limit: int) -> memoryview | None:
        """A writable view of at most `limit` bytes for the next bytes, or None when every
        buffer is busy (reading pauses until `wake` is called)."""

    def received(self, n: int) -> None:
        """`n` bytes were written at the start of the last view given."""

    def has_room(self) -> bool:
        """Whether get_buffer() would return a buffer now."""

    def set_wake(self, wake: Any) -> None:
        """`wake()` must be called (on the loop) when a buffer is free again after get_buffer
        returned None."""


class RawBody:
    """The body of one request, offered to the app before it calls receive()."""

    def __init__(self, protocol: RawBodyHttpToolsProtocol, cycle: RequestResponseCycle) -> None:
        self.protocol = protocol
        self.cycle = cycle
        self.length = protocol.content_length
        self.used = False

    def available(self) -> bool:
        """True while the body can still be taken over (nothing of it was consumed yet and the
        connection is on this request)."""
        p = self.protocol
        return (
            not self.used
            and p.cycle is self.cycle
            and self.cycle.more_body
            and not self.cycle.disconnected
            and not p.pipeline
            and p.parser is not None
            and not p.transport.is_closing()
        )

    async def read_into(self, sink: BodySink) -> bool:
        """Receive the whole body into `sink`; False if the client went away before its end
        (the sink then holds what arrived). Call only when available() (else RuntimeError)."""
        if not self.available():
            raise RuntimeError("the request body can no longer be taken over")
        self.used = True
        p = self.protocol
        if self.cycle.waiting_for_100_continue:  # as uvicorn's receive() does
            p.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.cycle.waiting_for_100_continue = False
        early = bytes(self.cycle.body)  # parsed with the headers, not yet delivered
        self.cycle.body = bytearray()
        reader = _BodyReader(
            p, sink, self.length - p.body_seen, asyncio.get_running_loop().create_future()
        )
        reader.start(early)
        return await reader.finished


class _BodyReader(asyncio.BufferedProtocol):
    """Owns the connection while the body is read; gives it back to the HTTP protocol."""

    def __init__(
        self,
        http: RawBodyHttpToolsProtocol,
        sink: BodySink,
        remaining: int,
        finished: asyncio.Future[bool],
    ) -> None:
        self.http = http
        self.sink = sink
        self.remaining = remaining
        self.finished = finished
        self.attached = False
        self.paused = False
        self.view: memoryview | None = None
        # Bytes received but not yet in the sink: those parsed with the headers, and (should the
        # sink ever have no buffer when the transport asks for one) a read into `scratch`.
        self.backlog = bytearray()
        self.scratch = bytearray(64 * 1024)
        sink.set_wake(self.resume_if_room)

    def start(self, early: bytes) -> None:
        """Take the connection (unless the body is already whole)."""
        self.backlog += early
        self._flush_backlog()
        if self.remaining <= 0:
            self._finish_if_drained()
            return
        self.http.flow.resume_reading()  # uvicorn may have paused at its high-water mark
        self.http.transport.set_protocol(self)
        self.attached = True
        if self.backlog or not self.sink.has_room():
            self._pause()

    def _flush_backlog(self) -> None:
        while self.backlog:
            view = self.sink.get_buffer(len(self.backlog))
            if view is None:
                return
            n = len(view)
            view[:] = self.backlog[:n]
            view.release()
            self.sink.received(n)
            del self.backlog[:n]

    def get_buffer(self, sizehint: int) -> Any:
        self.view = None
        if self.remaining > 0 and not self.backlog:
            self.view = self.sink.get_buffer(self.remaining)
        if self.view is not None:
            return self.view
        # No room in the sink (reading pauses before that, so this is a safety net): read a
        # little into the scratch buffer and keep it until there is room.
        self._pause()
        return memoryview(self.scratch)[: max(1, min(len(self.scratch), self.remaining))]

    def buffer_updated(self, nbytes: int) -> None:
        if self.remaining <= 0:
            return  # cannot happen: reads are bounded by the body's remaining length
        if self.view is not None:
            self.view = None  # not released: the transport still holds its buffer export
            self.sink.received(nbytes)
        else:
            self.backlog += self.scratch[:nbytes]
        self.remaining -= nbytes
        if self.remaining <= 0:
            self._finish_if_drained()
        elif self.backlog or not self.sink.has_room():
            self._pause()

    def resume_if_room(self) -> None:
        """The sink freed a buffer (called on the loop)."""
        if self.finished.done():
            return
        self._flush_backlog()
        if self.remaining <= 0:
            self._finish_if_drained()
        elif self.paused and not self.backlog and self.sink.has_room():
            self.paused = False
            self.http.transport.resume_reading()

    def _pause(self) -> None:
        if not self.paused and self.attached:
            self.paused = True
            self.http.transport.pause_reading()

    def _finish_if_drained(self) -> None:
        if not self.backlog:
            self.done(True)

    def done(self, complete: bool) -> None:
        """Give the connection back to the HTTP protocol, the request's body complete."""
        if self.finished.done():
            return
        http = self.http
        if self.attached:
            if self.paused:
                self.paused = False
                http.transport.resume_reading()
            if not http.transport.is_closing():
                http.transport.set_protocol(http)
        self.attached = False
        if complete:
            http.reset_parser()
            http.cycle.more_body = False
            http.cycle.message_event.set()
        self.finished.set_result(complete)

    def connection_lost(self, exc: Exception | None) -> None:
        self.attached = False
        if not self.finished.done():
            self.finished.set_result(False)
        self.http.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()


class _WholeBody:
    """A BodySink of one buffer the size of the body."""

    def __init__(self, length: int) -> None:
        self.buf = bytearray(length)
        self.fill = 0

    def set_wake(self, wake: Any) -> None:
        pass

    def has_room(self) -> bool:
        return self.fill < len(self.buf)

    def get_buffer(self, limit: int) -> memoryview | None:
        if self.fill >= len(self.buf):
            return None
        return memoryview(self.buf)[self.fill : min(len(self.buf), self.fill + limit)]

    def received(self, n: int) -> None:
        self.fill += n


async def body_of(request: Request) -> bytes:
    """The whole request body, like `await request.body()`, received straight into one buffer
    when the server offers it (ClientDisconnect if the client goes away before its end)."""
    raw = request.scope.get("extensions", {}).get(EXTENSION)
    if not isinstance(raw, RawBody) or not raw.available():
        return await request.body()
    sink = _WholeBody(raw.length)
    if not await raw.read_into(sink):
        raise ClientDisconnect()
    return bytes(sink.buf)
