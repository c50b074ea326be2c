"""Pack files of small blobs: visible only whole, recovered after a crash, damage never served."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.blobstore import BlobStoreBase, CorruptBlobError, FileBlobStore
from registry.packstore import STALE_TMP_S, CorruptPackError, PackIndex, read_trailer


def _blob(i: int, size: int = 100) -> tuple[str, int, bytes]:
    data = (f"blob {i} ".encode() * size)[:size]
    return hashlib.sha256(data).hexdigest(), size, data


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileBlobStore]:
    s = FileBlobStore(tmp_path / "blobs", pack_min=4)
    yield s
    s.close()


def _packs(root: Path) -> list[Path]:
    return sorted((root / "packs").glob("*.pack"))


def _loose(root: Path) -> list[Path]:
    return [p for p in root.glob("??/??/*") if p.is_file()]


def test_a_batch_is_one_pack_readable_through_has_size_open(store: FileBlobStore) -> None:
    items = [_blob(i, size=37 * i) for i in range(20)]  # includes a 0-byte blob
    store.put_many(items)
    assert len(_packs(store.root)) == 1 and not _loose(store.root)
    for sha, size, data in items:
        assert store.has(sha)
        assert store.size(sha) == size
        with store.open(sha) as fh:
            assert fh.read() == data
    absent = "0" * 64
    assert store.sizes([s for s, _, _ in items] + [absent]) == {
        **{s: n for s, n, _ in items},
        absent: None,
    }
    assert not store.has(absent)
    with pytest.raises(FileNotFoundError):
        store.open(absent)
    with pytest.raises(ValueError):
        store.size("../../etc/passwd")


def test_few_or_large_blobs_stay_loose_files(store: FileBlobStore) -> None:
    few = [_blob(i) for i in range(3)]
    store.put_many(few)
    big = _blob(99, size=2 * 1024 * 1024)
    store.put_many([big, *[_blob(i) for i in range(10, 14)]])
    assert len(_loose(store.root)) == 4  # the 3 of a small batch and the big one
    assert len(_packs(store.root)) == 1
    assert store.path_for(big[0]).read_bytes() == big[2]
    assert store.size(few[0][0]) == few[0][1]


def test_duplicates_within_and_across_batches_are_stored_once(store: FileBlobStore) -> None:
    first = [_blob(i) for i in range(6)]
    store.put_many([*first, first[0]])
    entries = read_trailer(_packs(store.root)[0])
    assert len(entries) == 6
    second = [*first[2:], *[_blob(i) for i in range(6, 10)]]
    store.put_many(second)
    packs = _packs(store.root)
    assert len(packs) == 2
    newest = max(packs, key=lambda p: p.name)
    assert sorted(s for s, _, _ in read_trailer(newest)) == sorted(s for s, _, _ in second[4:])
    store.put_many(first)  # everything known: no new pack
    assert len(_packs(store.root)) == 2
    for sha, _, data in [*first, *second]:
        assert store.open(sha).read() == data


def test_pack_renamed_but_not_indexed_is_recovered_on_reopen(
    store: FileBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [_blob(i) for i in range(8)]

    def crash(*args: object) -> None:
        raise RuntimeError("process died before the index commit")

    monkeypatch.setattr(store.packs.index, "add_pack", crash)
    with pytest.raises(RuntimeError):
        store.put_many(items)
    assert len(_packs(store.root)) == 1
    assert not store.has(items[0][0])  # not in the index: this process does not see it
    again = FileBlobStore(store.root)
    try:
        for sha, _, data in items:
            assert again.open(sha).read() == data
    finally:
        again.close()


def test_temp_pack_of_a_dead_writer_is_invisible_and_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    FileBlobStore(root).close()
    assert not (root / "packs" / "index.sqlite3").exists()  # no packs, no index file
    sha, _, data = _blob(1)
    stale = root / ".tmp" / "pack-1-dead.pack"
    stale.write_bytes(data)  # half a pack: bytes but no trailer, never renamed
    old = time.time() - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    young = root / ".tmp" / "pack-2-busy.pack"  # another writer may still be working on it
    young.write_bytes(data)
    store = FileBlobStore(root)
    try:
        assert not stale.exists()
        assert young.exists()
        assert not store.has(sha)
    finally:
        store.close()


def test_truncated_unindexed_pack_is_set_aside_not_served(store: FileBlobStore) -> None:
    items = [_blob(i) for i in range(5)]
    store.put_many(items)
    pack = _packs(store.root)[0]
    store.close()
    (store.root / "packs" / "index.sqlite3").unlink()  # forget the index: rebuild from packs
    for suffix in ("-wal", "-shm"):
        (store.root / "packs" / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    raw = pack.read_bytes()
    pack.write_bytes(raw[:-7])  # the footer is cut
    with pytest.raises(CorruptPackError):
        read_trailer(pack)
    reopened = FileBlobStore(store.root)
    try:
        assert not any(reopened.has(s) for s, _, _ in items)
        assert (store.root / "packs" / "corrupt" / pack.name).exists()
    finally:
        reopened.close()


def test_intact_packs_are_reindexed_when_the_index_is_lost(store: FileBlobStore) -> None:
    items = [_blob(i) for i in range(5)]
    store.put_many(items)
    store.close()
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (store.root / "packs" / name).unlink(missing_ok=True)
    reopened = FileBlobStore(store.root)
    try:
        assert reopened.sizes([s for s, _, _ in items]) == {s: n for s, n, _ in items}
    finally:
        reopened.close()


def test_damaged_indexed_pack_serves_nothing_and_blobs_can_be_stored_again(
    store: FileBlobStore,
) -> None:
    items = [_blob(i) for i in range(6)]
    store.put_many(items)
    pack = _packs(store.root)[0]
    with pack.open("r+b") as fh:
        fh.truncate(pack.stat().st_size - 1)  # shorter than recorded: all its blobs absent
    assert store.sizes([s for s, _, _ in items]) == {s: None for s, _, _ in items}
    with pytest.raises(FileNotFoundError):
        store.open(items[0][0])
    store.put_many(items)  # the client re-sends: a new, sound pack
    assert all(store.open(s).read() == d for s, _, d in items)


def test_flipped_bytes_in_a_pack_are_detected_on_read(store: FileBlobStore) -> None:
    items = [_blob(i) for i in range(4)]
    store.put_many(items)
    pack = _packs(store.root)[0]
    raw = bytearray(pack.read_bytes())
    raw[5] ^= 0xFF  # inside the first blob; same file size
    pack.write_bytes(bytes(raw))
    with pytest.raises(CorruptBlobError):
        store.open(items[0][0])
    assert store.open(items[1][0]).read() == items[1][2]


def test_put_many_refuses_bytes_that_do_not_match_the_declared_size(
    store: FileBlobStore,
) -> None:
    sha, size, data = _blob(1)
    with pytest.raises(ValueError):
        store.put_many([(sha, size + 1, data)])
    assert not store.has(sha)


class _DictStore(BlobStoreBase):
    """A minimal store with single-blob methods only (as an S3 store might start)."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.blobs: dict[str, bytes] = {}

    def size(self, sha256: str) -> int | None:
        data = self.blobs.get(sha256)
        return None if data is None else len(data)

    def put_from_file(self, tmp_path: Path, sha256: str, size: int) -> None:
        self.blobs[sha256] = tmp_path.read_bytes()
        tmp_path.unlink()


def test_generic_put_many_and_sizes_for_other_stores(tmp_path: Path) -> None:
    store = _DictStore(tmp_path)
    items = [_blob(i) for i in range(3)]
    store.put_many(items)
    assert store.blobs == {s: d for s, _, d in items}
    assert store.sizes([items[0][0], "f" * 64]) == {items[0][0]: items[0][1], "f" * 64: None}
    assert list(tmp_path.iterdir()) == []


def test_index_keeps_the_newest_location_of_a_blob(tmp_path: Path) -> None:
    index = PackIndex(tmp_path / "index.sqlite3")
    try:
        index.add_pack("a.pack", 100, [("ab" * 32, 0, 10)])
        index.add_pack("b.pack", 200, [("ab" * 32, 50, 10)])
        loc, pack_size = index.lookup(["ab" * 32])["ab" * 32]
        assert (loc.pack, loc.offset, pack_size) == ("b.pack", 50, 200)
    finally:
        index.close()
