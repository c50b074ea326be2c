"""tus 1.0.0 protocol behaviour of /v1/uploads/ (in-process, SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from registry import tus
from registry.db.models import Upload
from tests.registry.conftest import TEST_REGISTRY
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata

DATA = bytes(range(256)) * 40  # 10240 bytes
SHA = hashlib.sha256(DATA).hexdigest()
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def _new_upload(client: TestClient, who: Contributor, data: bytes = DATA) -> str:
    body = contribution_body(who.key, {"blob.bin": data}, registry=TEST_REGISTRY)
    cid = client.post("/v1/contributions", json=body, headers=who.headers).json()["id"]
    r = client.post(
        "/v1/uploads/",
        headers={
            **who.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": tus_metadata(hashlib.sha256(data).hexdigest(), cid),
        },
    )
    assert r.status_code == 201, r.text
    assert r.headers["tus-resumable"] == "1.0.0"
    assert "upload-expires" in r.headers
    return str(r.headers["location"])


def _patch(client: TestClient, who: Contributor, url: str, offset: int, data: bytes, **h: str):
    return client.patch(
        url,
        content=data,
        headers={**who.headers, **TUS, **OCTETS, "Upload-Offset": str(offset), **h},
    )


def _checksum(alg: str, data: bytes) -> str:
    return f"{alg} {base64.b64encode(hashlib.new(alg, data).digest()).decode()}"


def test_options_advertises_extensions(client: TestClient) -> None:
    r = client.options("/v1/uploads/")
    assert r.status_code == 204
    assert r.headers["tus-version"] == "1.0.0"
    assert set(r.headers["tus-extension"].split(",")) == {
        "creation",
        "termination",
        "expiration",
        "checksum",
    }
    assert set(r.headers["tus-checksum-algorithm"].split(",")) == {"sha256", "sha1"}
    assert int(r.headers["tus-max-size"]) > 0


def test_missing_tus_resumable_is_412(client: TestClient, alice: Contributor) -> None:
    url = _new_upload(client, alice)
    r = client.head(url, headers=alice.headers)
    assert r.status_code == 412
    assert r.headers["tus-version"] == "1.0.0"
    r = client.post("/v1/uploads/", headers={**alice.headers, "Tus-Resumable": "0.2.2"})
    assert r.status_code == 412


def test_chunked_upload_with_checksums_and_head(
    client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    url = _new_upload(client, alice)
    head = client.head(url, headers={**alice.headers, **TUS})
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(DATA))
    assert head.headers["cache-control"] == "no-store"
    meta = dict(x.split(" ") for x in head.headers["upload-metadata"].split(","))
    assert base64.b64decode(meta["sha256"]).decode() == SHA
    parts = [DATA[:4000], DATA[4000:8000], DATA[8000:]]
    offset = 0
    for i, part in enumerate(parts):
        alg = "sha256" if i % 2 == 0 else "sha1"
        r = _patch(client, alice, url, offset, part, **{"Upload-Checksum": _checksum(alg, part)})
        assert r.status_code == 204, r.text
        offset += len(part)
        assert r.headers["upload-offset"] == str(offset)
    assert app.state.blobs.has(SHA)
    with app.state.blobs.open(SHA) as fh:
        assert fh.read() == DATA
    assert client.head(url, headers={**alice.headers, **TUS}).headers["upload-offset"] == str(
        len(DATA)
    )


def test_wrong_offset_is_409_and_changes_nothing(client: TestClient, alice: Contributor) -> None:
    url = _new_upload(client, alice)
    assert _patch(client, alice, url, 0, DATA[:100]).status_code == 204
    r = _patch(client, alice, url, 0, DATA[:100])
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "offset_mismatch"
    assert client.head(url, headers={**alice.headers, **TUS}).headers["upload-offset"] == "100"


def test_checksum_mismatch_is_460_and_chunk_discarded(
    client: TestClient, alice: Contributor
) -> None:
    url = _new_upload(client, alice)
    bad = _checksum("sha256", b"something else")
    r = _patch(client, alice, url, 0, DATA[:500], **{"Upload-Checksum": bad})
    assert r.status_code == 460
    assert client.head(url, headers={**alice.headers, **TUS}).headers["upload-offset"] == "0"
    r = _patch(client, alice, url, 0, DATA, **{"Upload-Checksum": _checksum("sha1", DATA)})
    assert r.status_code == 204


def test_unsupported_checksum_algorithm_is_400(client: TestClient, alice: Contributor) -> None:
    url = _new_upload(client, alice)
    r = _patch(client, alice, url, 0, DATA, **{"Upload-Checksum": "md5 AAAA"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_checksum"


def test_wrong_content_type_is_415(client: TestClient, alice: Contributor) -> None:
    url = _new_upload(client, alice)
    r = client.patch(
        url,
        content=DATA,
        headers={**alice.headers, **TUS, "Upload-Offset": "0", "Content-Type": "text/plain"},
    )
    assert r.status_code == 415


def test_body_past_length_is_413_and_discarded(client: TestClient, alice: Contributor) -> None:
    url = _new_upload(client, alice)
    r = _patch(client, alice, url, 0, DATA + b"extra")
    assert r.status_code == 413
    assert client.head(url, headers={**alice.headers, **TUS}).headers["upload-offset"] == "0"


def test_creation_checks_length_and_metadata(client: TestClient, alice: Contributor) -> None:
    body = contribution_body(alice.key, {"blob.bin": DATA}, registry=TEST_REGISTRY)
    cid = client.post("/v1/contributions", json=body, headers=alice.headers).json()["id"]
    base = {**alice.headers, **TUS}
    r = client.post("/v1/uploads/", headers={**base, "Upload-Metadata": tus_metadata(SHA, cid)})
    assert r.status_code == 400  # no Upload-Length
    r = client.post(
        "/v1/uploads/",
        headers={**base, "Upload-Length": "5", "Upload-Metadata": tus_metadata(SHA, cid)},
    )
    assert r.json()["error"]["code"] == "bad_length"
    other = hashlib.sha256(b"not listed").hexdigest()
    r = client.post(
        "/v1/uploads/",
        headers={**base, "Upload-Length": "10", "Upload-Metadata": tus_metadata(other, cid)},
    )
    assert r.json()["error"]["code"] == "blob_not_expected"
    r = client.post(
        "/v1/uploads/",
        headers={**base, "Upload-Length": "10", "Upload-Metadata": "sha256 !!notbase64"},
    )
    assert r.json()["error"]["code"] == "bad_metadata"


def test_termination(client: TestClient, alice: Contributor) -> None:
    url = _new_upload(client, alice)
    assert _patch(client, alice, url, 0, DATA[:10]).status_code == 204
    assert client.delete(url, headers={**alice.headers, **TUS}).status_code == 204
    assert client.head(url, headers={**alice.headers, **TUS}).status_code == 404


def test_expired_upload_is_410(client: TestClient, app: FastAPI, alice: Contributor) -> None:
    url = _new_upload(client, alice)
    with app.state.sessions() as s:
        s.execute(update(Upload).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()
    assert client.head(url, headers={**alice.headers, **TUS}).status_code == 410
    assert _patch(client, alice, url, 0, DATA).status_code == 410
    # A new creation purges expired uploads with their partial files.
    _new_upload(client, alice, b"fresh")
    assert client.head(url, headers={**alice.headers, **TUS}).status_code == 404


def test_running_hash_survives_lost_cache(
    client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    """Like a crash after the first 3000 bytes were made durable but before the next ones
    were: the live state is gone, the upload resumes from the durable offset (the partial
    file is truncated to it and its prefix re-hashed)."""
    url = _new_upload(client, alice)
    assert _patch(client, alice, url, 0, DATA[:3000]).status_code == 204
    assert _patch(client, alice, url, 3000, DATA[3000:6000]).status_code == 204
    assert client.head(url, headers={**alice.headers, **TUS}).headers["upload-offset"] == "6000"
    app.state.tus_live.by_id.clear()
    with app.state.sessions() as session:
        session.execute(update(Upload).values(offset=3000))
        session.commit()
    head = client.head(url, headers={**alice.headers, **TUS})
    assert head.headers["upload-offset"] == "3000"
    assert _patch(client, alice, url, 6000, DATA[6000:]).status_code == 409
    assert _patch(client, alice, url, 3000, b"x" * 100).status_code == 204  # overwrites
    assert _patch(client, alice, url, 3100, DATA[3100:]).status_code == 460  # whole sha256
    assert not app.state.blobs.has(SHA)


def test_resume_from_durable_offset_completes(
    client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    url = _new_upload(client, alice)
    assert _patch(client, alice, url, 0, DATA[:3000]).status_code == 204
    assert _patch(client, alice, url, 3000, DATA[3000:6000]).status_code == 204
    client.head(url, headers={**alice.headers, **TUS})
    app.state.tus_live.by_id.clear()
    with app.state.sessions() as session:
        session.execute(update(Upload).values(offset=3000))
        session.commit()
    assert _patch(client, alice, url, 3000, DATA[3000:]).status_code == 204
    assert app.state.blobs.has(SHA)
    with app.state.blobs.open(SHA) as fh:
        assert fh.read() == DATA


def test_head_makes_acknowledged_bytes_durable(
    client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    """A HEAD on a live upload flushes first: it reports every acknowledged byte, and that
    offset is the durable one a restarted server would resume from."""
    url = _new_upload(client, alice)
    r = _patch(client, alice, url, 0, DATA[:4000])
    assert r.headers["upload-offset"] == "4000"
    head = client.head(url, headers={**alice.headers, **TUS})
    assert head.headers["upload-offset"] == "4000"
    app.state.tus_live.by_id.clear()
    head = client.head(url, headers={**alice.headers, **TUS})
    assert head.headers["upload-offset"] == "4000"
    assert _patch(client, alice, url, 4000, DATA[4000:]).status_code == 204
    assert app.state.blobs.has(SHA)


def test_partial_writer_unaligned_patches_give_exact_bytes(tmp_path: Path) -> None:
    """Direct-I/O staging: PATCH boundaries off the block size, slices larger than the staging
    buffer, a rolled-back PATCH and an interrupted one all leave exactly the accepted bytes."""
    data = os.urandom(tus.STAGING * 2 + 12_345)
    path = tmp_path / "u.part"
    path.touch()
    cuts = [0, 1, 4095, 4097, 70_000, tus.STAGING + 3, len(data)]
    for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        w = tus.PartialWriter(path, a, hashlib.sha256(), None)
        m = min(a + 10, b)
        w.write([data[a:m], data[m:b]])
        w.finish()
        if i == 3:  # a rejected PATCH in between (checksum mismatch): nothing of it stays
            w.close()
            junk = tus.PartialWriter(path, b, hashlib.sha256(), None)
            junk.write([os.urandom(9_000)])
            junk.finish()
            junk.rollback()
            junk.close()
        else:
            w.close()
        assert path.stat().st_size == b
    assert path.read_bytes() == data


def test_partial_writer_falls_back_when_direct_io_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * tus.BLOCK + 100)
    path = tmp_path / "u.part"
    path.touch()
    w = tus.PartialWriter(path, 0, hashlib.sha256(), None)
    w.write([data[:1000]])  # staged only: less than a block
    if w.direct_fd is None:
        pytest.skip("no O_DIRECT on this filesystem: the buffered path is the only one")
    real_pwrite = os.pwrite
    direct = w.direct_fd

    def refuse(fd: int, buf: Any, offset: int) -> int:
        if fd == direct:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, buf, offset)

    monkeypatch.setattr(tus.os, "pwrite", refuse)
    w.write([data[1000:]])
    w.finish()
    w.close()
    assert path.read_bytes() == data
