"""The registry's tus receive path without the Unix-only calls (O_DIRECT, pread/pwrite,
writev, fdatasync hidden, as on Windows and macOS): uploads still complete byte for byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry import tus
from tests.registry.test_uploads import DATA, SHA, TUS, _new_upload, _patch
from tests.support.registry_actors import Contributor

UNIX_ONLY = ("O_DIRECT", "pread", "pwrite", "writev", "fdatasync")


@pytest.fixture
def without_unix_io(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in UNIX_ONLY:
        monkeypatch.delattr(os, name, raising=False)


def test_a_resumed_upload_completes_without_unix_only_io(
    without_unix_io: None, client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    url = _new_upload(client, alice)
    assert _patch(client, alice, url, 0, DATA[:3001]).status_code == 204
    head = client.head(url, headers={**alice.headers, **TUS})  # flushes: sync_data
    assert head.headers["upload-offset"] == "3001"
    app.state.tus_live.by_id.clear()  # a restart: the next PATCH reopens the partial file
    assert _patch(client, alice, url, 3001, DATA[3001:]).status_code == 204
    with app.state.blobs.open(SHA) as fh:
        assert fh.read() == DATA


def test_the_partial_writer_without_unix_only_io(without_unix_io: None, tmp_path: Path) -> None:
    data = os.urandom(3 * tus.BLOCK + 100)
    path = tmp_path / "u.part"
    path.touch()
    for start, end in ((0, 1000), (1000, 5000), (5000, len(data))):
        w = tus.PartialWriter(path, start, hashlib.sha256(), None)
        assert w.direct_fd is None
        w.write([data[start : start + 7], data[start + 7 : end]])
        w.finish()
        w.close()
    assert path.read_bytes() == data
