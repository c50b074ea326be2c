"""The queue against a fault-injecting relay in front of the real registry.

Drops mid-body, stalls past the read timeout, 500/503/429 (with Retry-After) and garbage:
the queue must still end with the contribution accepted, the blobs identical, one contribution
and one completed upload per blob at the registry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.domain.errors import RegistryRefused, RegistryUnavailable
from app.domain.states import State
from app.registry_client.api import RegistryClient
from app.registry_client.http import RegistryHttp, RetryPolicy, Timeouts
from tests.integration.faults.helpers import (
    FAST_RETRY,
    Desk,
    assert_blobs_equal,
    make_desk,
    proxy_fixture,  # noqa: F401 - fixture 'proxy'
    random_bytes,
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.integration.faults.proxy import Fault, FaultProxy
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

FILES = {
    "one.bin": random_bytes(700_000, 11),
    "two.bin": random_bytes(500_000, 12),
    "three.txt": b"three\n" * 1000,
}


@pytest.fixture
def desk(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path, proxy: FaultProxy
) -> Iterator[Desk]:
    d = make_desk(tmp_path, data_dir, proxy.url)  # everything goes through the relay
    try:
        yield d
    finally:
        d.ctx.close()


def _registry_rows(reg: RegistryProcess, sql: str) -> list[tuple[object, ...]]:
    db = reg.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def test_queue_survives_drops_stalls_and_error_answers(
    desk: Desk, proxy: FaultProxy, registry: RegistryProcess
) -> None:
    item = desk.add("ds", FILES)
    desk.submit(item)
    retry_after = {"Retry-After": "1"}
    faults = [
        proxy.add(Fault("drop", 2, method="PATCH", after_bytes=100_000)),
        proxy.add(Fault("stall", 1, method="PATCH", seconds=4.0)),  # read timeout is 3 s
        proxy.add(Fault("answer", 2, method="PATCH", status=503, headers=retry_after)),
        proxy.add(Fault("answer", 2, method="HEAD", status=500)),
        proxy.add(Fault("answer", 2, method="PATCH", status=429, headers=retry_after)),
        proxy.add(Fault("answer", 1, method="POST", path_prefix="/v1/contributions/", status=502)),
        proxy.add(Fault("drop", 1, method="POST", path_prefix="/v1/uploads/batch", after_bytes=10)),
        proxy.add(Fault("answer", 1, method="POST", path_prefix="/v1/uploads/batch", status=503)),
    ]
    queue = desk.queue(chunk_size=128 * 1024, timeouts=Timeouts(connect=2.0, read=3.0))
    snap = queue.run()  # waits out the offline spells by itself
    queue.close()
    assert all(f.applied >= 1 for f in faults), [(f.kind, f.applied) for f in faults]
    assert desk.state(item) == "accepted", snap
    assert_blobs_equal(registry, FILES)
    contributions = _registry_rows(registry, "SELECT id, state FROM contributions")
    assert len(contributions) == 1 and contributions[0][1] == "accepted"
    completed = _registry_rows(
        registry,
        "SELECT sha256, count(*) FROM uploads WHERE completed_at IS NOT NULL GROUP BY sha256",
    )
    assert len(completed) == 2 and all(n == 1 for _, n in completed)  # the two big blobs
    assert len(_registry_rows(registry, "SELECT sha256 FROM blobs")) == 3  # + one batched
    # Re-sent at most what the faults cost: every dropped/stalled/refused PATCH one chunk.
    total = sum(len(v) for v in FILES.values())
    assert proxy.patch_body_bytes <= total + 8 * 128 * 1024


def test_garbage_answer_is_unreachable_with_a_clear_message(proxy: FaultProxy) -> None:
    proxy.add(
        Fault(
            "answer", 10, status=200, body=b"<html>hi</html>", headers={"Content-Type": "text/html"}
        )
    )
    client = RegistryClient(proxy.url, retry=RetryPolicy(attempts=1))
    with pytest.raises(RegistryUnavailable, match="the registry sent an unreadable answer"):
        client.health()
    client.close()


def test_connection_refused_is_unreachable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = RegistryClient(f"http://127.0.0.1:{port}", retry=FAST_RETRY)
    with pytest.raises(RegistryUnavailable, match="cannot reach the registry"):
        client.health()
    client.close()


def test_stall_is_a_timeout_not_a_hang(proxy: FaultProxy) -> None:
    proxy.add(Fault("stall", 1, seconds=3.0))
    client = RegistryClient(
        proxy.url, retry=RetryPolicy(attempts=1), timeouts=Timeouts(connect=1, read=0.5)
    )
    with pytest.raises(RegistryUnavailable, match="did not answer in time"):
        client.health()
    client.close()


def test_retry_after_is_honoured_and_5xx_retried(proxy: FaultProxy) -> None:
    proxy.add(Fault("answer", 1, status=429, headers={"Retry-After": "2"}))
    proxy.add(Fault("answer", 1, status=503))
    slept: list[float] = []
    http = RegistryHttp(proxy.url, retry=RetryPolicy(attempts=4, base_s=0.01), sleep=slept.append)
    body = http.json("GET", "/v1/health", auth=False)
    assert body["status"] == "ok"
    assert slept[0] == 2.0 and 0 <= slept[1] <= 0.02
    http.close()


def test_4xx_is_refused_with_the_registry_message(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path, proxy: FaultProxy
) -> None:
    from app.services.clients import make_client

    d = make_desk(tmp_path, data_dir, proxy.url)
    client = make_client(d.ctx, retry=FAST_RETRY)
    with pytest.raises(RegistryRefused, match="No such contribution"):
        client.get_contribution("c_doesnotexist")
    # A 401 refreshes the token once: the second call logs in again and succeeds.
    client.http._token = "forged"
    assert list(client.list_mine()) == []
    client.close()
    d.ctx.close()


def test_lost_finalize_answer_is_recovered_by_sync(desk: Desk, proxy: FaultProxy) -> None:
    item = desk.add("ds", {"a.txt": b"aaaa"})
    desk.submit(item)
    # The registry gets the whole finalize request, but its answer never comes back.
    lost = proxy.add(
        Fault("drop", 100, method="POST", path_prefix="/v1/contributions/", after_bytes=10**9)
    )
    queue = desk.queue()
    snap = queue.run(wait_offline=False)
    assert lost.applied >= 1 and desk.state(item) == "uploading"
    assert snap.registry_status.value == "offline"
    proxy.clear()
    assert queue.sync() == [(item, State.ACCEPTED)]
    assert desk.state(item) == "accepted"
    queue.close()
