"""The client against a hostile registry on loopback: what it must refuse, quickly, without
sending anything elsewhere (docs/protocol.md, "What the client accepts")."""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain.errors import RegistryRefused, RegistryUnavailable
from app.registry_client.api import MAX_PAGES, RegistryClient
from app.registry_client.http import MAX_ANSWER_BYTES, OutOfBounds, RetryPolicy, Timeouts
from app.registry_client.tus import BandwidthLimiter, TusClient, UploadHooks
from app.registry_client.usage import all_models, rewards_after, usage_window
from tests.unit.registry_client.hostile import HostileRegistry, elapsed, hostile_registry

FAST = Timeouts(connect=2.0, read=5.0, total=2.0)
ONE_TRY = RetryPolicy(attempts=1)


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with hostile_registry() as registry:
        yield registry


def _client(registry: HostileRegistry, **kw: object) -> RegistryClient:
    key = Ed25519PrivateKey.generate()
    return RegistryClient(
        registry.url,
        lambda: key,
        timeouts=kw.pop("timeouts", FAST),  # type: ignore[arg-type]
        retry=ONE_TRY,
        sleep=lambda _s: None,
    )


def _page(n: int) -> dict[str, object]:
    return {"items": [], "nextCursor": str(n + 1), "hasMore": True}


def test_endless_model_pages_end_with_a_clear_error(hostile: HostileRegistry) -> None:
    counter = iter(range(10**9))
    hostile.route(
        "GET",
        "/v1/models",
        lambda h: h.send_json(
            200,
            {
                "items": [{"id": f"m{next(counter)}", "name": "m"}],
                "nextCursor": f"c{next(counter)}",
                "hasMore": True,
            },
        ),
    )
    with _client(hostile) as client, pytest.raises(RegistryUnavailable, match="more pages"):
        for _ in all_models(client):
            pass
    assert hostile.paths().count("/v1/models") == MAX_PAGES


def test_a_dripping_answer_is_cut_at_the_total_time(hostile: HostileRegistry) -> None:
    hostile.route("GET", "/v1/me/rewards", lambda h: h.drip(0.2))
    start = time.monotonic()
    with _client(hostile) as client, pytest.raises(OutOfBounds, match="did not finish"):
        rewards_after(client, None)
    assert elapsed(start) < FAST.total + 2.0  # per-read timeouts alone never fire on a drip


def test_dripping_headers_are_cut_at_the_total_time(hostile: HostileRegistry) -> None:
    hostile.route("GET", "/v1/health", lambda h: h.drip(0.2, headers_too=True))
    start = time.monotonic()
    with _client(hostile) as client, pytest.raises(OutOfBounds):
        client.health(retry=False)
    assert elapsed(start) < FAST.total + 2.0


def test_a_huge_declared_answer_is_refused_before_it_is_read(hostile: HostileRegistry) -> None:
    hostile.route(
        "GET",
        "/v1/models",
        lambda h: h.send_raw(
            200, {"Content-Type": "application/json", "Content-Length": str(300 * 1024**2)}
        ),
    )
    with _client(hostile) as client, pytest.raises(OutOfBounds, match="larger than 32 MiB"):
        list(all_models(client))


def test_a_huge_chunked_answer_stops_at_the_limit(hostile: HostileRegistry) -> None:
    chunk = b'{"a": "' + b"x" * (1024 * 1024) + b'"},'
    hostile.route("GET", "/v1/me/rewards", lambda h: h.endless(chunk, 300 * 1024 * 1024))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with _client(hostile, timeouts=Timeouts(5.0, 30.0, 60.0)) as client:
        with pytest.raises(OutOfBounds, match="larger than"):
            rewards_after(client, None)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 4 * MAX_ANSWER_BYTES  # not the 300 MB (and more) it sent


def test_a_tus_location_on_another_origin_gets_nothing(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    with hostile_registry() as elsewhere:
        hostile.route(
            "POST",
            "/v1/uploads/",
            lambda h: h.send_raw(201, {"Location": f"{elsewhere.url}/v1/uploads/x"}),
        )
        blob = tmp_path / "blob"
        blob.write_bytes(b"secret bytes")
        with _client(hostile) as client:
            urls: list[str] = []
            with pytest.raises(OutOfBounds, match="another host"):
                TusClient(client.http).upload(
                    blob, 12, {"sha256": "0" * 64}, hooks=UploadHooks(on_url=urls.append)
                )
        assert elsewhere.seen == []  # neither the token nor the bytes went there
        assert urls == []  # and the foreign URL was not kept to resume from


def test_a_dripping_tus_patch_is_cut_at_its_deadline_and_resumed_from_the_offset(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    """The first PATCH gets an answer dripped a byte at a time (per-read timeouts never fire):
    past its deadline it is cut, the client asks where the upload stands (HEAD) and sends the
    rest from there."""
    chunk = 1024
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)) * 8)  # two chunks
    patches: list[int] = []
    stored = [0]

    def head(h: Any) -> None:
        h.send_raw(200, {"Upload-Offset": str(stored[0]), "Upload-Length": "2048"})

    def patch(h: Any) -> None:
        at = int(h.headers["Upload-Offset"])
        patches.append(at)
        if len(patches) == 1:
            stored[0] = at + len(h.body)  # it keeps the bytes, then never finishes answering
            h.drip(0.1)
            return
        stored[0] = at + len(h.body)
        h.send_raw(204, {"Upload-Offset": str(stored[0])})

    hostile.route("HEAD", "/v1/uploads/u1", head)
    hostile.route("PATCH", "/v1/uploads/u1", patch)
    short = Timeouts(connect=2.0, read=5.0, total=0.3)
    result: list[object] = []
    with _client(hostile, timeouts=short) as client:
        tus = TusClient(client.http, chunk_size=chunk, floor_bps=1024 * 1024)
        assert tus.patch_deadline(chunk) == pytest.approx(0.3 + chunk / (1024 * 1024))

        def run() -> None:
            try:
                result.append(
                    tus.upload(blob, 2048, {}, url=f"{hostile.url}/v1/uploads/u1", max_transient=3)
                )
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                result.append(exc)

        start = time.monotonic()
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(10.0)
        assert not worker.is_alive(), "the dripping PATCH was never cut"
        assert elapsed(start) < 5.0
    assert result == [f"{hostile.url}/v1/uploads/u1"]
    assert patches == [0, chunk]  # the second PATCH starts at the offset the HEAD gave
    calls = [m for m, p in hostile.seen if p.startswith("/v1/uploads/")]
    assert calls == ["HEAD", "PATCH", "HEAD", "PATCH"]  # cut, asked where it stands, resumed
    assert stored[0] == 2048


def test_a_patch_held_back_by_our_own_bandwidth_limit_is_not_cut(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    """The deadline counts the registry's time, not the limiter's: a chunk sent at 16 KiB/s
    (about 1 s) under a 0.3 s deadline goes through in one PATCH."""
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * 16384)
    patches: list[int] = []

    def patch(h: Any) -> None:
        patches.append(int(h.headers["Upload-Offset"]))
        h.send_raw(204, {"Upload-Offset": str(len(h.body))})

    hostile.route("HEAD", "/v1/uploads/u2", lambda h: h.send_raw(200, {"Upload-Offset": "0"}))
    hostile.route("PATCH", "/v1/uploads/u2", patch)
    short = Timeouts(connect=2.0, read=5.0, total=0.3)
    with _client(hostile, timeouts=short) as client:
        limiter = BandwidthLimiter(16384)
        tus = TusClient(client.http, chunk_size=16384, limiter=limiter, floor_bps=1024 * 1024)
        start = time.monotonic()
        tus.upload(blob, 16384, {}, url=f"{hostile.url}/v1/uploads/u2", max_transient=1)
        assert elapsed(start) > 0.6  # it was held back well past the deadline
    assert patches == [0]


def test_a_stored_upload_url_on_another_origin_is_not_contacted(hostile: HostileRegistry) -> None:
    with hostile_registry() as elsewhere, _client(hostile) as client:
        with pytest.raises(OutOfBounds):
            TusClient(client.http).offset(f"{elsewhere.url}/v1/uploads/x")
        assert elsewhere.seen == []


def test_redirects_to_another_host_are_not_followed(hostile: HostileRegistry) -> None:
    with hostile_registry() as elsewhere:
        hostile.route(
            "GET",
            "/v1/me/rewards",
            lambda h: h.send_raw(
                307, {"Location": f"{elsewhere.url}/steal", "Content-Length": "0"}
            ),
        )
        with _client(hostile) as client, pytest.raises(OutOfBounds, match="redirect"):
            rewards_after(client, None)
        assert elsewhere.seen == []


def test_ids_are_escaped_as_one_path_segment(hostile: HostileRegistry) -> None:
    with _client(hostile) as client:
        with pytest.raises(RegistryRefused):  # 404 from the route it really asked for
            client.get_contribution("../../x?y#")
        with pytest.raises(RegistryRefused):
            usage_window(client, "../../admin")
    assert "/v1/contributions/..%2F..%2Fx%3Fy%23" in [p for _m, p in hostile.seen]
    assert "/v1/contributions/..%2F..%2Fadmin/usage" in hostile.paths()


@pytest.mark.parametrize(
    "bad_id", ["../../x", "c_1/finalize", "a b", "c\x1b[31m", "", "x" * 200, 7, None]
)
def test_ids_from_the_registry_must_be_ids(hostile: HostileRegistry, bad_id: object) -> None:
    hostile.json_route(
        "GET",
        "/v1/contributions/c_1",
        {"id": bad_id, "state": "accepted", "reasons": [], "missingBlobs": []},
    )
    with _client(hostile) as client, pytest.raises(RegistryUnavailable, match="unreadable"):
        client.get_contribution("c_1")


def _entry(**over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "cursor": "1",
        "eventId": "e1",
        "contributionId": "c_1",
        "modelId": "m",
        "method": "influence",
        "amountMicro": 5,
        "at": "2026-11-26T07:59:58Z",
        "demo": False,
    }
    entry.update(over)
    return entry


@pytest.mark.parametrize(
    "entry",
    [
        _entry(amountMicro=10**30),
        _entry(amountMicro=2**63),
        _entry(amountMicro=-1),
        _entry(amountMicro=1e3),
        _entry(contributionId="../x"),
        _entry(modelId="m\u202eevil"),
        _entry(cursor="1e9"),
        _entry(cursor="9" * 40),
        _entry(eventId=""),
    ],
    ids=lambda e: next(f"{k}={e[k]!r}"[:40] for k in e if e[k] != _entry()[k]),
)
def test_reward_entries_out_of_range_are_unreadable(
    hostile: HostileRegistry, entry: dict[str, object]
) -> None:
    hostile.json_route(
        "GET", "/v1/me/rewards", {"items": [entry], "nextCursor": "1", "hasMore": False}
    )
    with _client(hostile) as client, pytest.raises(RegistryUnavailable, match="unreadable"):
        rewards_after(client, None)


def test_rewards_cursors_must_grow(hostile: HostileRegistry) -> None:
    hostile.json_route(
        "GET",
        "/v1/me/rewards",
        {"items": [_entry(cursor="5")], "nextCursor": "5", "hasMore": True},
    )
    with _client(hostile) as client, pytest.raises(RegistryUnavailable, match="unreadable"):
        rewards_after(client, "7")  # entries at or before the cursor asked: refused


def test_a_challenge_without_a_nonce_is_unreadable(hostile: HostileRegistry) -> None:
    hostile.json_route("POST", "/v1/auth/challenge", {"expiresIn": 300})
    with _client(hostile) as client, pytest.raises(RegistryUnavailable, match="unreadable"):
        rewards_after(client, None)


def test_deeply_nested_answers_are_unreadable(hostile: HostileRegistry) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    hostile.route(
        "GET",
        "/v1/health",
        lambda h: h.send_raw(
            200,
            {"Content-Type": "application/json", "Content-Length": str(len(deep))},
            deep.encode(),
        ),
    )
    with _client(hostile) as client, pytest.raises(RegistryUnavailable, match="unreadable"):
        client.health(retry=False)


def test_error_messages_are_bounded(hostile: HostileRegistry) -> None:
    message = "\x1b]0;owned\x07" + "m" * 100_000
    hostile.json_route(
        "GET", "/v1/contributions/c_1", {"error": {"code": "x", "message": message}}, 400
    )
    with _client(hostile) as client, pytest.raises(Exception) as caught:
        client.get_contribution("c_1")
    assert len(str(caught.value)) < 2100  # not the 100 kB the registry sent


@pytest.mark.parametrize("offset", ["²", "9" * 5000, "-1", "1e3", ""])
def test_upload_offsets_must_be_ascii_digits(hostile: HostileRegistry, offset: str) -> None:
    hostile.route("HEAD", "/v1/uploads/u1", lambda h: h.send_raw(200, {"Upload-Offset": offset}))
    with _client(hostile) as client, pytest.raises(RegistryUnavailable, match="unreadable"):
        TusClient(client.http).offset(f"{hostile.url}/v1/uploads/u1", retry=False)


@pytest.mark.parametrize("value", ["²", "9" * 5000, "soon"])
def test_odd_retry_after_values_are_ignored(hostile: HostileRegistry, value: str) -> None:
    hostile.route(
        "GET",
        "/v1/health",
        lambda h: h.send_json(
            503, {"error": {"code": "busy", "message": "busy"}}, {"Retry-After": value}
        ),
    )
    slept: list[float] = []
    key = Ed25519PrivateKey.generate()
    client = RegistryClient(
        hostile.url, lambda: key, timeouts=FAST, retry=RetryPolicy(attempts=2), sleep=slept.append
    )
    with client, pytest.raises(RegistryUnavailable, match="HTTP 503"):
        client.health()
    assert len(slept) == 1 and slept[0] <= RetryPolicy().max_retry_after_s


EVIL = "\x1b]0;owned\x07\x1b[2J\u202eevil\x00name"


def _clean(text: str) -> bool:
    return not any(ch in text for ch in ("\x1b", "\x07", "\u202e", "\x00"))


def test_hidden_characters_in_model_texts_are_replaced_as_they_are_read(
    hostile: HostileRegistry,
) -> None:
    hostile.json_route(
        "GET",
        "/v1/models",
        {"items": [{"id": "m1", "name": EVIL, "description": f"line 1\n{EVIL}"}], "hasMore": False},
    )
    with _client(hostile) as client:
        (model,) = list(all_models(client))
    assert _clean(model.name) and model.name.endswith("evil\ufffdname")
    assert _clean(model.description) and model.description.startswith("line 1\n")


def test_hidden_characters_in_datanet_texts_and_error_messages_are_replaced(
    hostile: HostileRegistry,
) -> None:
    hostile.json_route(
        "GET",
        "/v1/datanets/d1",
        {"id": "d1", "name": EVIL, "description": EVIL, "rules": {}, "rulesVersion": 1},
    )
    hostile.json_route(
        "GET", "/v1/contributions/c_1", {"error": {"code": "x\x1b", "message": EVIL}}, 400
    )
    with _client(hostile) as client:
        datanet = client.datanet("d1")
        with pytest.raises(RegistryRefused) as refused:
            client.get_contribution("c_1")
    assert _clean(datanet.name) and _clean(datanet.description)
    assert _clean(str(refused.value)) and "evil" in str(refused.value)
