"""The shared bandwidth limiter takes a new rate while workers are sending."""

from __future__ import annotations

import threading
import time

import pytest

from app.registry_client.tus import BandwidthLimiter


def test_zero_is_unlimited_and_negative_is_refused() -> None:
    limiter = BandwidthLimiter(0)
    assert limiter.unlimited
    start = time.monotonic()
    for _ in range(100):
        limiter.acquire(limiter.block_size())
    assert time.monotonic() - start < 0.1
    with pytest.raises(ValueError):
        BandwidthLimiter(-1)
    with pytest.raises(ValueError):
        limiter.set_rate(-5)


def test_a_limit_set_later_applies_to_the_next_block() -> None:
    limiter = BandwidthLimiter(0)
    limiter.set_rate(100_000)  # 100 KB/s, burst 25 KB
    start = time.monotonic()
    sent = 0
    while sent < 75_000:
        n = limiter.block_size()
        limiter.acquire(n)
        sent += n
    # 75 KB less the burst, at 100 KB/s: about half a second
    assert time.monotonic() - start >= 0.35


def test_lifting_the_limit_wakes_a_waiting_worker() -> None:
    limiter = BandwidthLimiter(20_000)
    limiter.acquire(limiter.block_size())  # the burst
    done = threading.Event()

    def send() -> None:
        limiter.acquire(200_000)  # 10 s at 20 KB/s
        done.set()

    worker = threading.Thread(target=send)
    worker.start()
    time.sleep(0.1)
    assert not done.is_set()
    limiter.set_rate(0)
    assert done.wait(1.0), "the worker kept waiting under the old limit"
    worker.join(1)
