"""tus PATCHes of a blob whose sha256 the manifest already gives (no second hash pass).

A fake transport records each PATCH; the registry's answer is scripted. What must hold:
every PATCH carries an Upload-Checksum; a blob of at most two chunks goes in one PATCH with
the manifest's digest; bigger blobs are chunked with each chunk's own digest; and a changed
file is reported as such, while bytes damaged on the way are simply sent again.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.registry_client.http import RetryPolicy, Timeouts
from app.registry_client.tus import BlobMismatch, TusClient


class _Resp:
    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.status_code = status
        self.headers = headers
        self.reason = "x"
        self._body = body

    def json(self) -> Any:
        import json

        return json.loads(self._body)

    def close(self) -> None:
        pass


class FakeHttp:
    """Enough of RegistryHttp for TusClient: records PATCHes, answers by `judge`."""

    def __init__(self, judge: Callable[[bytes, bytes], _Resp]) -> None:
        self.retry = RetryPolicy(attempts=3, base_s=0.0, cap_s=0.0)
        self.timeouts = Timeouts()
        self.patches: list[tuple[int, bytes, bytes]] = []  # (offset, body, checksum digest)
        self.judge = judge

    def url(self, path: str) -> str:
        return "http://registry" + path

    def check_origin(self, url: str) -> None:
        assert url.startswith("http://registry/")

    def request(self, method: str, path: str, **kw: Any) -> _Resp:
        if method == "HEAD":  # after a refused chunk: where does the registry stand?
            return _Resp(200, {"Upload-Offset": "0"})
        assert method == "POST"
        return _Resp(201, {"Location": "/v1/uploads/u1"})

    def send_once(self, method: str, path: str, **kw: Any) -> _Resp:
        assert method == "PATCH"
        data = kw["data"]
        body = data if isinstance(data, bytes) else b"".join(iter(lambda: data.read(7), b""))
        alg, b64 = kw["headers"]["Upload-Checksum"].split(" ")
        assert alg == "sha256"
        digest = base64.b64decode(b64)
        offset = int(kw["headers"]["Upload-Offset"])
        self.patches.append((offset, body, digest))
        return self.judge(body, digest)

    def backoff(self, attempt: int) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        pass

    def drop_token(self) -> None:
        pass


def _accept_if_checksum_matches(offset_of: dict[str, int]) -> Callable[[bytes, bytes], _Resp]:
    def judge(body: bytes, digest: bytes) -> _Resp:
        if hashlib.sha256(body).digest() != digest:
            return _Resp(460, {}, b'{"error":{"code":"checksum_mismatch","message":"no"}}')
        offset_of["n"] += len(body)
        return _Resp(204, {"Upload-Offset": str(offset_of["n"])})

    return judge


def _client(judge: Callable[[bytes, bytes], _Resp], chunk: int) -> tuple[TusClient, FakeHttp]:
    http = FakeHttp(judge)
    return TusClient(http, chunk_size=chunk), http  # type: ignore[arg-type]


def test_a_blob_of_two_chunks_goes_in_one_patch_with_the_manifest_digest(
    tmp_path: Path,
) -> None:
    data = bytes(range(256)) * 12  # 3072 bytes, chunk 2048: at most two chunks
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    tus, http = _client(_accept_if_checksum_matches({"n": 0}), 2048)
    tus.upload(path, len(data), {}, sha256=sha)
    assert [(o, len(b)) for o, b, _ in http.patches] == [(0, 3072)]
    assert http.patches[0][2] == bytes.fromhex(sha)


def test_a_bigger_blob_is_chunked_and_every_chunk_has_its_own_checksum(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20  # 5120 bytes > two chunks of 2048
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    tus, http = _client(_accept_if_checksum_matches({"n": 0}), 2048)
    tus.upload(path, len(data), {}, sha256=hashlib.sha256(data).hexdigest())
    assert [(o, len(b)) for o, b, _ in http.patches] == [(0, 2048), (2048, 2048), (4096, 1024)]
    assert all(hashlib.sha256(b).digest() == d for _, b, d in http.patches)


def test_without_a_digest_small_blobs_are_hashed_as_before(tmp_path: Path) -> None:
    data = b"x" * 3000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    tus, http = _client(_accept_if_checksum_matches({"n": 0}), 2048)
    tus.upload(path, len(data), {})
    assert [len(b) for _, b, _ in http.patches] == [2048, 952]


def test_a_file_changed_since_the_manifest_is_a_blob_mismatch_at_once(tmp_path: Path) -> None:
    old, new = b"a" * 3000, b"b" * 3000  # same size: the size check cannot see it
    path = tmp_path / "f.bin"
    path.write_bytes(new)
    tus, http = _client(_accept_if_checksum_matches({"n": 0}), 2048)
    with pytest.raises(BlobMismatch, match="changed after it was added"):
        tus.upload(path, len(new), {}, sha256=hashlib.sha256(old).hexdigest())
    assert len(http.patches) == 1  # not three refused resends


def test_bytes_damaged_on_the_way_are_sent_again(tmp_path: Path) -> None:
    data = b"c" * 3000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    answers = iter([_Resp(460, {}, b'{"error":{"code":"checksum_mismatch","message":"no"}}')])

    def judge(body: bytes, digest: bytes) -> _Resp:
        return next(answers, _Resp(204, {"Upload-Offset": str(len(body))}))

    tus, http = _client(judge, 2048)
    tus.upload(path, len(data), {}, sha256=hashlib.sha256(data).hexdigest())
    assert len(http.patches) == 2
    assert all(d == hashlib.sha256(data).digest() for _, _, d in http.patches)


def test_a_malformed_digest_is_ignored_and_the_chunk_hashed(tmp_path: Path) -> None:
    data = b"d" * 100
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    tus, http = _client(_accept_if_checksum_matches({"n": 0}), 2048)
    tus.upload(path, len(data), {}, sha256="not-hex")
    assert http.patches[0][2] == hashlib.sha256(data).digest()
