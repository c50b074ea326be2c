"""Bad input at the HTTP layer: body limits, malformed JSON, content types, disk full."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry import tus
from tests.registry.conftest import TEST_REGISTRY
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata


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
