"""Bad input at the HTTP layer: body limits, malformed JSON, content types, disk full."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry import tus
from registry.db.usage_models import UsageEvent
from tests.registry.conftest import TEST_REGISTRY
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata
from tests.support.usage_data import event, usage_world


@pytest.fixture
def small_client(make_app: Callable[..., FastAPI], db_url: str) -> Iterator[TestClient]:
    app = make_app(db_url, max_body_bytes=2048)
    with TestClient(app, base_url=TEST_REGISTRY) as c:
        yield c


def test_oversized_json_is_413_by_length(small_client: TestClient) -> None:
    r = small_client.post(
        "/v1/auth/challenge",
        content=b'{"publicKey":"' + b"a" * 5000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_oversized_chunked_json_is_413(small_client: TestClient) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"publicKey":"'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"}'

    r = small_client.post(
        "/v1/auth/challenge", content=body(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_malformed_json_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/auth/challenge",
        content=b'{"publicKey": ',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"


def test_wrong_content_type_is_415(client: TestClient) -> None:
    r = client.post(
        "/v1/auth/challenge",
        content=b"publicKey=abc",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


def test_unknown_route_uses_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 1 MiB tmpfs when we may mount (root); None when not permitted."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_507_and_nothing_visible(
    make_app: Callable[..., FastAPI],
    db_url: str,
    tiny_disk: Path | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if tiny_disk is None:
        # Not allowed to mount: simulate ENOSPC in the partial-file writer instead.
        def no_space(self: tus.PartialWriter, parts: list[bytes]) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(tus.PartialWriter, "write", no_space)
        blobs = tmp_path / "blobs-full"
    else:
        blobs = tiny_disk / "blobs"
    app = make_app(db_url, blobs_dir=blobs)
    data = os.urandom(3 * 1024 * 1024)  # 3 MiB into a 1 MiB filesystem
    sha = hashlib.sha256(data).hexdigest()
    with TestClient(app, base_url=TEST_REGISTRY) as client:
        who = Contributor()
        who.sign_in(client)
        body = contribution_body(who.key, {"big.bin": data}, registry=TEST_REGISTRY)
        cid = client.post("/v1/contributions", json=body, headers=who.headers).json()["id"]
        tus_h = {**who.headers, "Tus-Resumable": "1.0.0"}
        r = client.post(
            "/v1/uploads/",
            headers={
                **tus_h,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": tus_metadata(sha, cid),
            },
        )
        url = r.headers["location"]
        r = client.patch(
            url,
            content=data,
            headers={
                **tus_h,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage"
        assert client.head(url, headers=tus_h).headers["upload-offset"] == "0"
        assert not app.state.blobs.has(sha)
        visible = [p for p in blobs.rglob("*") if p.is_file() and p.stat().st_size > 0]
        assert visible == [], visible
        r = client.get(f"/v1/contributions/{cid}", headers=who.headers)
        assert r.json()["missingBlobs"] == [sha]


def test_usage_bodies_beyond_the_json_limits_store_nothing(db_url: str, tmp_path: Path) -> None:
    """The usage body is held to the JSON limits like every body: non-finite numbers in any
    number field, numbers that overflow a float, deep nesting and oversized bodies are refused
    whole (4xx, the error shape), nothing of the batch is stored, and the next batch works."""
    with usage_world(db_url, tmp_path, contributors=1, max_body_bytes=64 * 1024) as w:
        c = w.ids_of(w.contributors[0])[0]
        good = json.dumps(event("ok", "test-model", [(c, 1, "influence")]))
        weight = '"weight": 1'
        assert weight in good
        bad_weights = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400")
        bodies = [good.replace(weight, f'"weight": {v}') for v in bad_weights]
        bodies += [good.replace('"feeMicro": 1000000', f'"feeMicro": {v}') for v in bad_weights]
        bodies += [good.replace(weight, '"weight": ' + "[" * 100_000 + "]" * 100_000)]
        bodies += [good.replace('"eventId": "ok"', '"eventId": "' + "x" * 70_000 + '"')]
        answers = []
        for bad in bodies:
            r = w.client.post(
                "/v1/usage",
                content=('{"events": [' + good.replace('"ok"', '"first"') + ", " + bad + "]}"),
                headers={**w.operator.headers, "Content-Type": "application/json"},
            )
            answers.append((r.status_code, sorted(r.json())))
        assert all(400 <= s < 500 and keys == ["error"] for s, keys in answers), answers
        with w.sessions() as s:
            assert s.scalar(select(func.count()).select_from(UsageEvent)) == 0
        assert w.post_usage([json.loads(good)]).json()["accepted"] == ["ok"]
