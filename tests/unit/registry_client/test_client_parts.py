"""Pure parts of the registry client: backoff, Retry-After, tus pieces, bandwidth, parsing.

Registry behaviour is tested against the real registry (tests/integration/test_upload_*.py);
these check the client's own arithmetic and file handling without any network.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from app.domain.errors import RegistryUnavailable
from app.registry_client.api import batch_body, parse_status
from app.registry_client.http import RetryPolicy, retry_after_seconds
from app.registry_client.tus import (
    BandwidthLimiter,
    FileSlice,
    UploadStopped,
    chunk_digest,
    encode_metadata,
)


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=4.0)
    rng = random.Random(7)
    for attempt in range(8):
        values = [policy.backoff(attempt, rng) for _ in range(200)]
        bound = min(4.0, 0.5 * 2**attempt)
        assert all(0.0 <= v <= bound for v in values)
        assert max(values) > bound * 0.8  # full jitter really uses the whole range


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = time.time()
    date = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=30), usegmt=True)
    assert 28.0 <= (retry_after_seconds(date, now=now) or 0) <= 31.0


def test_file_slice_reads_exactly_its_window_and_reports_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    seen: list[int] = []
    window = FileSlice(path, 1000, 5000, on_bytes=seen.append)
    assert len(window) == 5000
    out = b""
    while chunk := window.read(1024):
        out += chunk
    assert out == data[1000:6000] and sum(seen) == 5000
    assert chunk_digest(path, 1000, 5000) == hashlib.sha256(data[1000:6000]).digest()


def test_file_slice_stops_when_asked_and_sees_truncation(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    stop = threading.Event()
    window = FileSlice(path, 0, 100, stop=stop)
    assert window.read(10) == b"x" * 10
    stop.set()
    with pytest.raises(UploadStopped):
        window.read(10)
    short = FileSlice(path, 50, 100)  # the file has only 50 bytes left
    assert len(short.read(100)) == 50
    with pytest.raises(OSError, match="truncated"):
        short.read(100)


def test_bandwidth_limiter_holds_the_rate() -> None:
    limiter = BandwidthLimiter(200_000)  # 200 KB/s, burst 50 KB
    start = time.monotonic()
    sent = 0
    while sent < 150_000:
        n = limiter.block_size()
        limiter.acquire(n)
        sent += n
    elapsed = time.monotonic() - start
    # 150 KB minus the 50 KB burst at 200 KB/s ≈ 0.5 s
    assert 0.35 <= elapsed <= 1.5, elapsed


def test_upload_metadata_is_base64_pairs() -> None:
    text = encode_metadata({"sha256": "ab", "filename": "é.txt"})
    pairs = dict(p.split(" ") for p in text.split(","))
    assert base64.b64decode(pairs["sha256"]) == b"ab"
    assert base64.b64decode(pairs["filename"]).decode() == "é.txt"


def test_batch_body_framing_and_changed_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"aaa")
    b.write_bytes(b"bb")
    body = batch_body([("1" * 64, 3, a), ("2" * 64, 2, b)])
    n = int.from_bytes(body[:4], "big")
    assert body[4 + n :] == b"aaabb"
    with pytest.raises(OSError, match="changed size"):
        batch_body([("1" * 64, 4, a)])


def test_answers_of_the_wrong_shape_are_unreadable() -> None:
    with pytest.raises(RegistryUnavailable, match="unreadable answer"):
        parse_status({"id": 3, "state": "accepted"})
    with pytest.raises(RegistryUnavailable, match="unreadable answer"):
        parse_status({"id": "c_1", "state": "accepted", "reasons": "no"})
    ok = parse_status(
        {"id": "c_1", "state": "rejected", "reasons": [{"code": "x", "message": "m", "path": "p"}]}
    )
    assert ok.reasons[0].text() == "p: m"
