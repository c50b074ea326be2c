"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

Leaves hash as ``SHA-256(0x00 || data)``, interior nodes as ``SHA-256(0x01 || left || right)``,
the empty tree as ``SHA-256()``. A tree of n > 1 leaves splits at the largest power of two
smaller than n. Proof generation works over any ``subtree(lo, hi)`` function returning the
Merkle tree hash of leaves ``[lo, hi)``, so the same code serves an in-memory list (tests) and
hash tiles (:mod:`app.tlog.tiles`). Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from app.tlog.errors import MalformedError, ProofError

HASH_SIZE = 32
MAX_TREE_SIZE = 1 << 63
MAX_PROOF_HASHES = 64  # a tree of fewer than 2**63 leaves never needs more
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

SubtreeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): where RFC 6962 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the given leaf hashes, in one pass with a stack of complete
    subtrees (no recursion, each node hashed once)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    stack: list[bytes] = []
    sha = _sha256
    for i, h in enumerate(leaf_hashes):
        # merge one completed subtree per trailing one bit of i
        j = i
        while j & 1:
            h = sha(b"\x01" + stack.pop() + h).digest()
            j >>= 1
        stack.append(h)
    h = stack.pop()
    while stack:
        h = sha(b"\x01" + stack.pop() + h).digest()
    return h


def _check_sizes(*sizes: int) -> None:
    for s in sizes:
        if not 0 <= s < MAX_TREE_SIZE:
            raise MalformedError(f"tree size {s} is out of range")


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves, bottom-up (RFC 9162
    §2.1.3.1)."""
    _check_sizes(size)
    if not 0 <= index < size:
        raise MalformedError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the one of ``new_size``
    (RFC 9162 §2.1.4.1); empty when old_size is 0 or equal to new_size."""
    _check_sizes(old_size, new_size)
    if old_size > new_size:
        raise MalformedError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    path: list[bytes] = []
    m, lo, hi, whole = old_size, 0, new_size, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                path.append(subtree(lo, hi))
            break
        k = split_point(n)
        if m <= k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            m -= k
            lo += k
            whole = False
    path.reverse()
    return path


def _check_proof_shape(proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise MalformedError(f"proof has {len(proof)} hashes, more than any tree needs")
    sizes = set(map(len, proof))
    if sizes and sizes != {HASH_SIZE}:
        raise MalformedError(
            f"proof hash of {min(sizes ^ {HASH_SIZE})} bytes, expected {HASH_SIZE}"
        )


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root the audit path leads to (RFC 9162 §2.1.3.2 steps 1-3)."""
    _check_sizes(size)
    _check_proof_shape(proof)
    if len(leaf) != HASH_SIZE:
        raise MalformedError(f"leaf hash of {len(leaf)} bytes, expected {HASH_SIZE}")
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    sha = _sha256
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof for leaf {index} of {size} is too long")
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof for leaf {index} of {size} is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofError` unless the tree (old_size, old_root) is a prefix of
    (new_size, new_root) (RFC 9162 §2.1.4.2)."""
    _check_sizes(old_size, new_size)
    _check_proof_shape(proof)
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        raise MalformedError("a root hash is not 32 bytes")
    if old_size > new_size:
        raise ProofError(f"the tree shrank from {old_size} to {new_size} leaves")
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from {old_size} to {new_size}")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    sha = _sha256
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from {old_size} to {new_size} is too long")
        if fn & 1 or fn == sn:
            fr = sha(b"\x01" + c + fr).digest()
            sr = sha(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is too short")
    if fr != old_root:
        raise ProofError(
            f"the tree of size {old_size} is not a prefix of the one of size {new_size}"
        )
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the root of size {new_size}")


class InclusionBatch:
    """Verifies many inclusion proofs against one tree head, sharing the work.

    Each verified path leaves its interior nodes (identified by height and index in the tree of
    this size) in a table; a later path that reaches a known node with the same hash is proven
    there, without hashing up to the root, and one that reaches it with another hash fails.
    Sound: a known node's hash is committed under the root by an earlier, complete proof.
    """

    def __init__(self, size: int, root: bytes) -> None:
        _check_sizes(size)
        if len(root) != HASH_SIZE:
            raise MalformedError("the root hash is not 32 bytes")
        self.size = size
        self.root = root
        self._known: dict[int, bytes] = {}  # (index << 6 | height) → verified hash

    def verify(self, index: int, leaf: bytes, proof: Sequence[bytes]) -> None:
        size = self.size
        _check_proof_shape(proof)
        if len(leaf) != HASH_SIZE:
            raise MalformedError(f"leaf hash of {len(leaf)} bytes, expected {HASH_SIZE}")
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of size {size}")
        known = self._known
        keys: list[int] = []
        values: list[bytes] = []
        add_key, add_value, lookup = keys.append, values.append, known.get
        fn, sn, r, height = index, size - 1, leaf, 0
        sha = _sha256
        for p in proof:
            if sn == 0:
                raise ProofError(f"inclusion proof for leaf {index} of {size} is too long")
            if fn & 1 or fn == sn:
                r = sha(b"\x01" + p + r).digest()
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
                        height += 1
            else:
                r = sha(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
            height += 1
            key = fn << 6 | height
            have = lookup(key)
            if have is not None:
                if have != r:
                    raise ProofError(
                        f"inclusion proof for leaf {index} disagrees with verified nodes of {size}"
                    )
                known.update(zip(keys, values, strict=True))
                return
            add_key(key)
            add_value(r)
        if sn != 0:
            raise ProofError(f"inclusion proof for leaf {index} of {size} is too short")
        if r != self.root:
            raise ProofError(
                f"inclusion proof for leaf {index} does not lead to the root of size {size}"
            )
        known.update(zip(keys, values, strict=True))


class MemoryTree:
    """All leaf hashes in a list: the simplest tree, for tests and small tools."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self.hashes: list[bytes] = list(leaf_hashes)

    @property
    def size(self) -> int:
        return len(self.hashes)

    def append(self, data: bytes) -> int:
        self.hashes.append(leaf_hash(data))
        return len(self.hashes) - 1

    def subtree(self, lo: int, hi: int) -> bytes:
        return root_of(self.hashes[lo:hi])

    def root(self, size: int | None = None) -> bytes:
        return root_of(self.hashes[: self.size if size is None else size])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self.subtree)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof(
            old_size, self.size if new_size is None else new_size, self.subtree
        )
