"""RFC 6962 hashing and proofs against the published test vectors, and the proof properties."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.tlog import (
    EMPTY_ROOT,
    InclusionBatch,
    MalformedError,
    MemoryTileStorage,
    MemoryTree,
    ProofError,
    TiledLog,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from app.tlog.errors import TlogError


def h(s: str) -> bytes:
    return bytes.fromhex(s)


# The RFC 6962 reference data of certificate-transparency, as published with
# transparency-dev/merkle (proof/verify_test.go) and used by Go's tlog tests: eight leaves, the
# root of every prefix, and audit / consistency paths (leaf indexes 0-based here).
LEAVES = [h(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f"]]  # fmt: skip
ROOTS = [h(x) for x in [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]  # fmt: skip
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]  # fmt: skip
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (1, 1, []),
]  # fmt: skip
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def ref_tree() -> MemoryTree:
    tree = MemoryTree()
    for leaf in LEAVES:
        tree.append(leaf)
    return tree


def test_roots_match_the_published_vectors() -> None:
    tree = ref_tree()
    assert EMPTY_ROOT == ROOTS[0] == hashlib.sha256(b"").digest()
    for n in range(9):
        assert tree.root(n) == ROOTS[n], n


def test_the_tiled_log_gives_the_published_roots_whatever_the_batches() -> None:
    hashes = [leaf_hash(x) for x in LEAVES]
    for batch in (1, 3, 8):
        log = TiledLog(MemoryTileStorage())
        for i in range(0, 8, batch):
            log.append(hashes[i : i + batch])
        assert [log.root(n) for n in range(9)] == ROOTS


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_paths_match_the_published_vectors(
    index: int, size: int, path: list[str]
) -> None:
    tree = ref_tree()
    proof = [h(p) for p in path]
    assert tree.inclusion_proof(index, size) == proof
    verify_inclusion(index, size, tree.hashes[index], proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_paths_match_the_published_vectors(old: int, new: int, path: list[str]) -> None:
    tree = ref_tree()
    proof = [h(p) for p in path]
    assert tree.consistency_proof(old, new) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


Probe = tuple[int, int, bytes, list[bytes], bytes]


def _inclusion_probes(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> Iterator[Probe]:
    yield index - 1, size, leaf, proof, root
    yield index + 1, size, leaf, proof, root
    yield index ^ 2, size, leaf, proof, root
    yield index, size * 2, leaf, proof, root
    yield index, size // 2, leaf, proof, root
    yield index, size, leaf_hash(b"WrongLeaf"), proof, root
    yield index, size, leaf, proof, EMPTY_ROOT
    yield index, size, leaf, proof, SOME_HASH
    yield index, size, leaf, [*proof, root], root
    yield index, size, leaf, [root, *proof], root
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        yield index, size, leaf, bad, root
    if proof:
        yield index, size, leaf, proof[:-1], root
    if len(proof) > 1:
        yield index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[:4])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, path: list[str]) -> None:
    tree = ref_tree()
    proof = [h(p) for p in path]
    leaf = tree.hashes[index]
    probes = list(_inclusion_probes(index, size, leaf, proof, ROOTS[size]))
    assert len(probes) > 10
    for i, s, lf, p, r in probes:
        with pytest.raises(TlogError):
            verify_inclusion(i, s, lf, p, r)
        if 0 <= i and s == size and r == ROOTS[size]:
            with pytest.raises(TlogError):
                InclusionBatch(s, r).verify(i, lf, p)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY[:4])
def test_corrupted_consistency_proofs_fail(old: int, new: int, path: list[str]) -> None:
    proof = [h(p) for p in path]
    r1, r2 = ROOTS[old], ROOTS[new]
    probes = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, SOME_HASH, r2, proof),
        (old, new, r1, SOME_HASH, proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((old, new, r1, r2, bad))
    for o, n, a, b, p in probes:
        if o == n == 0 or (o == 0 and not p):
            continue  # trivially consistent: nothing to catch
        with pytest.raises(TlogError):
            verify_consistency(o, n, a, b, p)


def test_trivial_consistency_cases() -> None:
    r1, r2 = SOME_HASH, EMPTY_ROOT
    verify_consistency(0, 0, r1, r1, [])
    verify_consistency(0, 1, r1, r2, [])
    verify_consistency(1, 1, r2, r2, [])
    for args in [(0, 0, r1, r2, []), (1, 1, r1, r2, []), (1, 0, r1, r2, []), (2, 1, r1, r2, []),
                 (1, 2, r1, r2, []), (0, 0, r2, r2, [r2]), (0, 1, r2, r2, [r2]),
                 (1, 1, r2, r2, [r2])]:  # fmt: skip
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_malformed_proofs_are_format_errors() -> None:
    with pytest.raises(MalformedError):
        verify_inclusion(0, 2, EMPTY_ROOT, [b"short"], EMPTY_ROOT)
    with pytest.raises(MalformedError):
        verify_inclusion(0, 2, EMPTY_ROOT, [EMPTY_ROOT] * 65, EMPTY_ROOT)
    with pytest.raises(MalformedError):
        verify_consistency(1, 2**63, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


def test_every_proof_of_every_small_tree_verifies_and_the_tiled_log_agrees() -> None:
    tree = MemoryTree()
    for i in range(600):
        tree.append(i.to_bytes(4, "big"))
    log = TiledLog(MemoryTileStorage())
    for lo in range(0, 600, 97):
        log.append(tree.hashes[lo : lo + 97])
    sizes = [*range(1, 40), 255, 256, 257, 511, 512, 513, 600]
    for n in sizes:
        root = tree.root(n)
        assert log.root(n) == root
        batch = InclusionBatch(n, root)
        for i in range(n):
            proof = tree.inclusion_proof(i, n)
            assert log.inclusion_proof(i, n) == proof
            verify_inclusion(i, n, tree.hashes[i], proof, root)
            batch.verify(i, tree.hashes[i], proof)
        for m in range(0, n + 1, max(1, n // 37)):
            proof = tree.consistency_proof(m, n)
            assert log.consistency_proof(m, n) == proof
            verify_consistency(m, n, tree.root(m), root, proof)


def test_batch_verification_rejects_a_leaf_that_meets_a_verified_node_with_another_hash() -> None:
    tree = MemoryTree([leaf_hash(bytes([i])) for i in range(16)])
    root = tree.root()
    batch = InclusionBatch(16, root)
    batch.verify(0, tree.hashes[0], tree.inclusion_proof(0))
    # leaf 1's path meets leaf 0's at their parent: a forged leaf 1 fails there
    with pytest.raises(ProofError):
        batch.verify(1, leaf_hash(b"forged"), tree.inclusion_proof(1))
    # and a proof that leads elsewhere from the start fails at the root
    with pytest.raises(ProofError):
        batch.verify(9, leaf_hash(b"forged"), tree.inclusion_proof(9))
    batch.verify(9, tree.hashes[9], tree.inclusion_proof(9))


def test_root_of_agrees_with_the_recursive_definition() -> None:
    def mth(hs: list[bytes]) -> bytes:
        if len(hs) == 1:
            return hs[0]
        k = 1 << ((len(hs) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(hs[:k]) + mth(hs[k:])).digest()

    hs = [leaf_hash(bytes([i])) for i in range(70)]
    for n in range(1, 71):
        assert root_of(hs[:n]) == mth(hs[:n])


entries = st.lists(st.binary(max_size=24), min_size=1, max_size=80)


@settings(max_examples=60, deadline=None)
@given(entries, st.data())
def test_any_single_bit_change_of_a_leaf_breaks_its_inclusion_proof(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.inclusion_proof(i)
    verify_inclusion(i, tree.size, leaf_hash(leaves[i]), proof, tree.root())
    original = leaves[i] or b"\x00"  # an empty leaf gets a byte so there is a bit to flip
    if not leaves[i]:
        tree.hashes[i] = leaf_hash(original)
        proof = tree.inclusion_proof(i)
    bit = data.draw(st.integers(0, len(original) * 8 - 1))
    changed = bytearray(original)
    changed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ProofError):
        verify_inclusion(i, tree.size, leaf_hash(bytes(changed)), proof, tree.root())


@settings(max_examples=60, deadline=None)
@given(entries, st.data())
def test_a_tree_that_shrank_or_forked_fails_consistency(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    n = tree.size
    m = data.draw(st.integers(1, n))
    good = tree.consistency_proof(m, n)
    verify_consistency(m, n, tree.root(m), tree.root(n), good)
    # shrank: the later checkpoint is smaller than the earlier one
    if m < n:
        with pytest.raises(ProofError):
            verify_consistency(n, m, tree.root(n), tree.root(m), good)
    # forked: the later tree changed one of the first m leaves
    j = data.draw(st.integers(0, m - 1))
    fork = MemoryTree(tree.hashes)
    fork.hashes[j] = leaf_hash(leaves[j] + b"\x01")
    with pytest.raises(ProofError):
        verify_consistency(m, n, tree.root(m), fork.root(n), fork.consistency_proof(m, n))
    with pytest.raises(ProofError):
        verify_consistency(m, n, tree.root(m), fork.root(n), good)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=8))
def test_appending_in_any_batches_gives_the_same_tree(batches: list[int]) -> None:
    total = sum(batches)
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(total)]
    reference = MemoryTree(hashes)
    log = TiledLog(MemoryTileStorage())
    sizes = []
    for b in batches:
        log.append(hashes[log.size : log.size + b])
        sizes.append(log.size)
    for s in sizes:
        assert log.root(s) == reference.root(s)
        assert log.consistency_proof(sizes[0], s) == reference.consistency_proof(sizes[0], s)
    last = total - 1
    assert log.inclusion_proof(last) == reference.inclusion_proof(last)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 200), st.data())
def test_a_batch_rejects_a_forged_leaf_wherever_it_comes(size: int, data: st.DataObject) -> None:
    tree = MemoryTree([leaf_hash(i.to_bytes(2, "big")) for i in range(size)])
    root = tree.root()
    order = data.draw(st.permutations(range(size)))
    forged_at = data.draw(st.integers(0, size - 1))
    batch = InclusionBatch(size, root)
    for i in order:
        proof = tree.inclusion_proof(i)
        if i == forged_at:
            with pytest.raises(ProofError):
                batch.verify(i, leaf_hash(b"forged"), proof)
        else:
            batch.verify(i, tree.hashes[i], proof)
