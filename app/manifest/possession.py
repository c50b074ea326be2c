"""Proof of possession of a blob: what the client computes and the registry checks.

Storage is content-addressed, so knowing a blob's sha256 must not be enough to claim it: a key
that has not uploaded a blob proves it holds the bytes by answering a fresh random nonce from
the registry with a digest over the nonce and the blob's content. Both sides compute it with
`possession_proof` (docs/protocol.md, "Proof of possession").

Blobs of up to FULL_LIMIT bytes are hashed whole. Larger blobs are sampled: SAMPLES ranges of
SAMPLE_BYTES at offsets derived from the nonce, so checking a proof reads at most ~1 MiB of the
stored blob whatever its size (a 64 GiB blob is not read whole for every proof). A caller
holding only a fraction f of a large blob passes with probability about f**SAMPLES.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

DOMAIN = b"contributor-desk-possession-v1\n"
NONCE_BYTES = 32
FULL_LIMIT = 1024 * 1024
SAMPLES = 32
SAMPLE_BYTES = 32 * 1024

ReadAt = Callable[[int, int], bytes]
"""read_at(offset, length) -> exactly `length` bytes of the blob from `offset`."""


def proof_ranges(nonce: bytes, size: int) -> list[tuple[int, int]]:
    """The (offset, length) ranges a proof covers, in hashing order."""
    if size <= FULL_LIMIT:
        return [(0, size)]
    span = size - SAMPLE_BYTES + 1
    out: list[tuple[int, int]] = []
    for i in range(SAMPLES):
        h = hashlib.sha256(DOMAIN + b"offset\n" + nonce + i.to_bytes(4, "big")).digest()
        out.append((int.from_bytes(h[:8], "big") % span, SAMPLE_BYTES))
    return out


def proof_bytes(size: int) -> int:
    """How many bytes of the blob a proof reads (the cost of making or checking one)."""
    return size if size <= FULL_LIMIT else SAMPLES * SAMPLE_BYTES


def possession_proof(nonce: bytes, sha256_hex: str, size: int, read_at: ReadAt) -> str:
    """Hex sha256(DOMAIN ‖ nonce ‖ sha256 ‖ size ‖ the covered ranges of the content).

    Raises OSError when read_at returns fewer bytes than asked (the file changed or shrank)."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a possession nonce has {NONCE_BYTES} bytes")
    h = hashlib.sha256(DOMAIN)
    h.update(nonce)
    h.update(bytes.fromhex(sha256_hex))
    h.update(size.to_bytes(8, "big"))
    for offset, length in proof_ranges(nonce, size):
        data = read_at(offset, length)
        if len(data) != length:
            raise OSError(f"short read: {len(data)} of {length} bytes at offset {offset}")
        h.update(data)
    return h.hexdigest()


def file_proof(path: str, nonce: bytes, sha256_hex: str, size: int) -> str:
    """possession_proof over a local file of `size` bytes (OSError if it cannot be read)."""
    with open(path, "rb") as fh:
        if size != fh.seek(0, 2):
            raise OSError(f"{path} no longer has {size} bytes")

        def read_at(offset: int, length: int) -> bytes:
            fh.seek(offset)
            return fh.read(length)

        return possession_proof(nonce, sha256_hex, size, read_at)
