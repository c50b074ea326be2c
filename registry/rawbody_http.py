"""uvicorn's httptools protocol offering registry.rawbody.RawBody (see that module): kept apart
because it needs httptools, which the rest of the registry does not."""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from registry.rawbody import EXTENSION, RawBody


def reads_into_buffer(transport: Any) -> bool:
    """uvloop's and asyncio's selector transports read a BufferedProtocol's bytes straight into
    its buffer and never past it; others (the Windows proactor reads ahead into its own buffer,
    TLS) could hand over bytes of the next request too, so they do not get the extension."""
    module = type(transport).__module__
    return module.startswith("uvloop") or module == "asyncio.selector_events"


class RawBodyHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, offering `RawBody` on requests with a Content-Length."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.content_length = -1
        self.body_seen = 0

    def reset_parser(self) -> None:
        """A fresh parser for the next request (the old one still expects the body's bytes)."""
        self.parser = httptools.HttpRequestParser(self)
        try:
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # pragma: no cover - httptools < 0.6.3
            pass

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.content_length = -1
        self.body_seen = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        lname = name.lower()
        if lname == b"content-length":
            text = value.strip()
            self.content_length = int(text) if text.isdigit() and len(text) <= 19 else -2
        elif lname == b"transfer-encoding":
            self.content_length = -2  # chunked (or both: the parser refuses that anyway)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if (
            self.content_length > 0
            and self.cycle is not None
            and self.cycle.scope is self.scope
            and reads_into_buffer(self.transport)
        ):
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[EXTENSION] = RawBody(self, self.cycle)

    def on_body(self, body: bytes) -> None:
        self.body_seen += len(body)
        super().on_body(body)
