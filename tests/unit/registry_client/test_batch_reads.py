"""Small-blob batch pieces: the checked read of each file and the hand-written JSON index."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.registry_client.api import batch_body, read_if_unchanged


def test_read_if_unchanged_checks_size_and_mtime_of_the_open_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    st = path.stat()
    assert read_if_unchanged(str(path), 5, st.st_mtime_ns) == b"hello"
    assert read_if_unchanged(str(path), 4, st.st_mtime_ns) is None  # size differs
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert read_if_unchanged(str(path), 5, st.st_mtime_ns) is None  # touched/rewritten
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    assert read_if_unchanged(str(empty), 0, empty.stat().st_mtime_ns) == b""
    with pytest.raises(FileNotFoundError):
        read_if_unchanged(str(tmp_path / "gone"), 5, 0)


def test_batch_index_is_valid_json_for_any_sha_text(tmp_path: Path) -> None:
    blobs: list[tuple[str, int, Path | bytes]] = [
        ("ab" * 32, 3, b"abc"),
        ('we"ird\\', 1, b"x"),  # never from our catalogue, but must not break the framing
    ]
    body = batch_body(blobs)
    n = int.from_bytes(body[:4], "big")
    index = json.loads(body[4 : 4 + n])
    assert index == {"blobs": [{"sha256": "ab" * 32, "size": 3}, {"sha256": 'we"ird\\', "size": 1}]}
    assert body[4 + n :] == b"abcx"
