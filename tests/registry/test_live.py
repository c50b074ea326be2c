"""The real server process: tuspy uploads, kill -9 and resume, PATCH races, access logs."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
from tusclient import client as tus_client

from tests.support.registry_actors import Contributor, contribution_body, tus_metadata
from tests.support.registry_server import RegistryProcess


@contextmanager
def _signed_in(base: str) -> Iterator[tuple[httpx.Client, Contributor]]:
    with httpx.Client(base_url=base, timeout=30) as http:
        who = Contributor()
        who.sign_in(http)
        yield http, who


def _contribution(http: httpx.Client, who: Contributor, base: str, files: dict[str, bytes]) -> str:
    body = contribution_body(who.key, files, registry=base)
    r = http.post("/v1/contributions", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _uploader(base: str, who: Contributor, stream: BinaryIO, cid: str, **kw: object):
    """tuspy uploader over an open stream (with file_path tuspy leaves files open)."""
    tc = tus_client.TusClient(f"{base}/v1/uploads/", headers=who.headers)
    sha = hashlib.sha256(stream.read()).hexdigest()
    stream.seek(0)
    return tc.uploader(
        file_stream=stream,
        metadata={"sha256": sha, "contribution": cid},
        upload_checksum=True,  # tuspy sends SHA-1 Upload-Checksum per chunk
        **kw,
    )


def test_tuspy_uploads_and_contribution_is_accepted(live_registry: str, tmp_path: Path) -> None:
    base = live_registry
    files = {"a.bin": os.urandom(300_000), "b.txt": b"small file\n"}
    with _signed_in(base) as (http, who):
        cid = _contribution(http, who, base, files)
        for name, data in files.items():
            p = tmp_path / name
            p.write_bytes(data)
            with p.open("rb") as fh:
                _uploader(base, who, fh, cid, chunk_size=64 * 1024).upload()
        r = http.post(f"/v1/contributions/{cid}/finalize", headers=who.headers)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "accepted"


@pytest.mark.slow
def test_upload_resumes_after_server_kill_9(tmp_path: Path) -> None:
    server = RegistryProcess(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "blobs")
    base = server.start()
    try:
        data = os.urandom(1_000_000)
        p = tmp_path / "big.bin"
        p.write_bytes(data)
        with _signed_in(base) as (http, who):
            cid = _contribution(http, who, base, {"big.bin": data})
        with p.open("rb") as fh:
            up = _uploader(base, who, fh, cid, chunk_size=250_000)
            up.upload(stop_at=500_000)
        url = up.url
        assert up.offset == 500_000
        server.kill()  # SIGKILL: no shutdown hooks, like a crash
        base2 = server.start(port=int(base.rsplit(":", 1)[1]))
        assert base2 == base
        head = httpx.head(url, headers={**who.headers, "Tus-Resumable": "1.0.0"})
        # The durable offset: at most what was acknowledged, never past the file's bytes.
        offset = int(head.headers["upload-offset"])
        assert 0 <= offset <= 500_000
        assert _partial(tmp_path / "blobs", url).read_bytes()[:offset] == data[:offset]
        with p.open("rb") as fh:
            resumed = _uploader(base, who, fh, cid, chunk_size=250_000, url=url)
            assert resumed.offset == offset
            resumed.upload()
        with httpx.Client(base_url=base) as http2:
            r = http2.post(f"/v1/contributions/{cid}/finalize", headers=who.headers)
            assert r.json()["state"] == "accepted", r.text
        sha = hashlib.sha256(data).hexdigest()
        assert (tmp_path / "blobs" / sha[:2] / sha[2:4] / sha).read_bytes() == data
    finally:
        server.kill()


def _partial(blobs: Path, url: str) -> Path:
    return blobs / ".uploads" / f"{url.rsplit('/', 1)[1]}.part"


@pytest.mark.slow
def test_kill_9_mid_patch_head_never_exceeds_stored_bytes(tmp_path: Path) -> None:
    """kill -9 of the server while PATCH bodies stream: after the restart HEAD reports an
    offset whose bytes are in the partial file (and are the client's bytes), and the upload
    resumes from it to a blob with the right sha256."""
    server = RegistryProcess(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "blobs")
    base = server.start()
    try:
        data = os.urandom(3_000_000)
        sha = hashlib.sha256(data).hexdigest()
        with _signed_in(base) as (http, who):
            cid = _contribution(http, who, base, {"big.bin": data})
            r = http.post(
                "/v1/uploads/",
                headers={
                    **who.headers,
                    "Tus-Resumable": "1.0.0",
                    "Upload-Length": str(len(data)),
                    "Upload-Metadata": tus_metadata(sha, cid),
                },
            )
        url = r.headers["location"]
        tus_h = {**who.headers, "Tus-Resumable": "1.0.0"}
        patch_h = {**tus_h, "Content-Type": "application/offset+octet-stream"}
        acked = 0
        with httpx.Client(timeout=30) as c:
            for end in (400_000, 800_000, 1_200_000):  # acknowledged PATCHes
                r = c.patch(
                    url, content=data[acked:end], headers={**patch_h, "Upload-Offset": str(acked)}
                )
                assert r.status_code == 204, r.text
                acked = int(r.headers["upload-offset"])
        assert acked == 1_200_000
        streaming = threading.Event()

        def body() -> Iterator[bytes]:
            yield data[acked : acked + 300_000]
            streaming.set()
            time.sleep(30)  # the server dies meanwhile
            yield data[acked + 300_000 :]

        def doomed() -> None:
            with httpx.Client(timeout=30) as c:
                try:
                    c.patch(
                        url,
                        content=body(),
                        headers={
                            **patch_h,
                            "Upload-Offset": str(acked),
                            "Content-Length": str(len(data) - acked),
                        },
                    )
                except httpx.TransportError:
                    pass

        t = threading.Thread(target=doomed, daemon=True)
        t.start()
        assert streaming.wait(10)
        time.sleep(0.3)  # let the server write what it received
        server.kill()
        server.start(port=int(base.rsplit(":", 1)[1]))
        head = httpx.head(url, headers=tus_h)
        offset = int(head.headers["upload-offset"])
        part = _partial(tmp_path / "blobs", url).read_bytes()
        assert offset <= acked
        assert offset <= len(part)
        assert part[:offset] == data[:offset]
        with httpx.Client(timeout=30) as c:
            r = c.patch(
                url, content=data[offset:], headers={**patch_h, "Upload-Offset": str(offset)}
            )
            assert r.status_code == 204, r.text
        assert (tmp_path / "blobs" / sha[:2] / sha[2:4] / sha).read_bytes() == data
    finally:
        server.kill()


def test_concurrent_patches_exactly_one_wins(live_registry: str) -> None:
    base = live_registry
    data = os.urandom(200_000)
    with _signed_in(base) as (http, who):
        cid = _contribution(http, who, base, {"race.bin": data})
        r = http.post(
            "/v1/uploads/",
            headers={
                **who.headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(len(data)),
                "Upload-Metadata": tus_metadata(hashlib.sha256(data).hexdigest(), cid),
            },
        )
    url = r.headers["location"]
    first_streaming = threading.Event()
    release_first = threading.Event()
    results: dict[str, int] = {}

    def slow_body() -> Iterator[bytes]:
        yield data[:1000]
        first_streaming.set()
        release_first.wait(10)
        yield data[1000:]

    headers = {
        **who.headers,
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }

    def first() -> None:
        with httpx.Client(timeout=30) as c:
            results["first"] = c.patch(
                url, content=slow_body(), headers={**headers, "Content-Length": str(len(data))}
            ).status_code

    t = threading.Thread(target=first)
    t.start()
    assert first_streaming.wait(10)
    time.sleep(0.3)  # let the server take the claim for the first PATCH
    with httpx.Client(timeout=30) as c:
        results["second"] = c.patch(url, content=data, headers=headers).status_code
    release_first.set()
    t.join(30)
    assert sorted(results.values()) == [204, 409], results
    head = httpx.head(url, headers={**who.headers, "Tus-Resumable": "1.0.0"})
    assert head.headers["upload-offset"] == str(len(data))


def test_access_log_is_json_without_tokens(live_registry_process: RegistryProcess) -> None:
    base = live_registry_process.base_url
    with _signed_in(base) as (http, who):
        http.get("/v1/contributions", headers=who.headers)
    time.sleep(0.2)
    lines = [
        json.loads(x)
        for x in live_registry_process.log_path.read_text().splitlines()
        if x.startswith("{")
    ]
    listing = [x for x in lines if x["path"] == "/v1/contributions"]
    assert listing and listing[-1]["status"] == 200
    assert listing[-1]["principal"] == who.fingerprint[:12]
    assert set(listing[-1]) == {"method", "path", "status", "durationMs", "principal"}
    assert who.token not in live_registry_process.log_path.read_text()


@pytest.mark.parametrize("path", ["/v1/health", "/v1/datanets"])
def test_public_endpoints(live_registry: str, path: str) -> None:
    assert httpx.get(live_registry + path).status_code == 200
