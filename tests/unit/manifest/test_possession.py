"""The possession proof both the app and the registry compute (app/manifest/possession.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from app.manifest.possession import (
    FULL_LIMIT,
    NONCE_BYTES,
    SAMPLE_BYTES,
    SAMPLES,
    file_proof,
    possession_proof,
    proof_bytes,
    proof_ranges,
)

NONCE = bytes(range(NONCE_BYTES))


def _proof(data: bytes, nonce: bytes = NONCE) -> str:
    return possession_proof(
        nonce, hashlib.sha256(data).hexdigest(), len(data), lambda o, n: data[o : o + n]
    )


@pytest.mark.parametrize("size", [0, 1, FULL_LIMIT])
def test_small_blobs_are_hashed_whole(size: int) -> None:
    assert proof_ranges(NONCE, size) == [(0, size)]
    assert proof_bytes(size) == size


def test_large_blobs_are_sampled_inside_the_blob_from_the_nonce() -> None:
    size = FULL_LIMIT + 1
    ranges = proof_ranges(NONCE, size)
    assert len(ranges) == SAMPLES and proof_bytes(size) == SAMPLES * SAMPLE_BYTES
    assert all(0 <= o and o + n <= size and n == SAMPLE_BYTES for o, n in ranges)
    assert proof_ranges(NONCE, size) == ranges  # deterministic
    assert proof_ranges(b"\xff" * NONCE_BYTES, size) != ranges  # a new nonce, new places


def test_the_proof_depends_on_nonce_and_every_covered_byte() -> None:
    data = os.urandom(5000)
    assert _proof(data) == _proof(data)
    assert _proof(data) != _proof(data, b"\x01" * NONCE_BYTES)
    flipped = data[:4999] + bytes([data[4999] ^ 1])
    assert _proof(flipped) != _proof(data)


def test_file_proof_matches_and_refuses_a_changed_file(tmp_path: Path) -> None:
    data = os.urandom(FULL_LIMIT + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert file_proof(str(path), NONCE, sha, len(data)) == _proof(data)
    with pytest.raises(OSError, match="no longer has"):
        file_proof(str(path), NONCE, sha, len(data) + 1)
    with pytest.raises(OSError, match="short read"):
        possession_proof(NONCE, sha, len(data), lambda o, n: data[o : o + n - 1])
    with pytest.raises(ValueError):
        possession_proof(b"short", sha, len(data), lambda o, n: data[o : o + n])
