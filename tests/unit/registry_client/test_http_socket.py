"""Upload connections get a large socket send buffer where the system allows one."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from app.registry_client.http import SEND_BUFFER, RegistryHttp, send_buffer_options

OPTION = (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


def test_the_buffer_is_asked_for_only_where_it_is_not_capped_lower(tmp_path: Path) -> None:
    capped, roomy = tmp_path / "capped", tmp_path / "roomy"
    capped.write_text("212992\n")  # a common Linux default: asking would shrink the buffer
    roomy.write_text(f"{SEND_BUFFER}\n")
    assert send_buffer_options(str(capped)) == []
    assert send_buffer_options(str(roomy)) == [OPTION]
    assert send_buffer_options(str(tmp_path / "absent")) == [OPTION]  # not Linux


def test_connections_use_what_send_buffer_options_says() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    answered = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
        )
        answered.wait(5)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    http = RegistryHttp(f"http://127.0.0.1:{port}")
    try:
        resp = http.send_once("GET", "/v1/health", auth=False, stream=True)
        conn = resp.raw._connection  # the pooled connection
        assert conn is not None and conn.sock is not None
        size = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        if send_buffer_options():
            assert size >= SEND_BUFFER  # Linux reports twice the size asked
        else:
            assert size < SEND_BUFFER  # left to the system
        resp.close()
    finally:
        answered.set()
        http.close()
        server.close()
