"""The tlog-tiles layout, the tree kept as tiles, and the tile reader (what a client does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.tlog import (
    DirectoryTileStorage,
    MalformedError,
    MemoryTileStorage,
    MemoryTree,
    ProofError,
    Tile,
    TiledLog,
    TileNotFound,
    TileReader,
    decode_bundle,
    encode_bundle,
    entries_path,
    leaf_hash,
    parse_tile_path,
    tile_path,
    tiles_for_size,
)
from app.tlog.errors import TlogError
from app.tlog.tiles import new_tiles, tile_width


def test_tile_paths_follow_the_spec() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 0) == "tile/0/000"
    assert tile_path(2, 999, 17) == "tile/2/999.p/17"
    assert tile_path(1, 1000) == "tile/1/x001/000"
    assert entries_path(1234067, 8) == "tile/entries/x001/x234/067.p/8"
    for t in [Tile(0, 1234067), Tile(5, 0, 1), Tile(None, 10**9, 255), Tile(63, 7)]:
        assert parse_tile_path(t.path) == t


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1234",
        "tile/0/001/234",  # a non-last element without its x
        "tile/0/x001",  # the last element with an x
        "tile/00/000",
        "tile/64/000",
        "tile/0/x000/001",  # leading zero element
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/012",
        "tile/0/000/",
        "tile/data/000",
        "/tile/0/000",
        "tile/0/x01/000",
    ],
)
def test_bad_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(MalformedError):
        parse_tile_path(path)


def test_the_spec_example_tree_of_70000() -> None:
    tiles = tiles_for_size(70_000)
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if t.width == 256]) == 273
    assert [t for t in level0 if t.width != 256] == [Tile(0, 273, 112)]
    assert [t for t in tiles if t.level == 1] == [Tile(1, 0), Tile(1, 1, 17)]
    assert [t for t in tiles if t.level == 2] == [Tile(2, 0, 1)]
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tile_width(70_000, 0, 274) == 0
    assert new_tiles(256, 300) == [Tile(0, 1, 44)]


def test_entry_bundles() -> None:
    entries = [b"", b"a", b"x" * 65535]
    data = encode_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert decode_bundle(data, 3) == entries
    with pytest.raises(MalformedError):
        encode_bundle([b"x" * 65536])
    for bad in [data[:-1], data + b"\x00", b"\x00\x05abc"]:
        with pytest.raises(MalformedError):
            decode_bundle(bad)
    with pytest.raises(MalformedError):
        decode_bundle(data, 2)
    with pytest.raises(MalformedError):
        decode_bundle(encode_bundle([b"a"] * 257))
    with pytest.raises(MalformedError, match="more than 256 entries can fill"):
        decode_bundle(bytes(256 * 65537 + 1))


def _entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def test_append_writes_the_tiles_a_client_reads(tmp_path: Path) -> None:
    entries = _entries(70_000)
    hashes = [leaf_hash(e) for e in entries]
    storage = DirectoryTileStorage(tmp_path)
    log = TiledLog(storage)
    sizes = []
    for lo, n in [(0, 1), (1, 300), (301, 65_235), (65_536, 4464)]:
        assert log.append(hashes[lo : lo + n]) == lo
        sizes.append(log.size)
    assert log.size == 70_000
    reference = MemoryTree(hashes)
    # every tile of every size a checkpoint was made at is on disk, as the spec requires
    for size in sizes:
        for t in tiles_for_size(size):
            data = (tmp_path / t.path).read_bytes()
            assert data == b"".join(reference.hashes[:0] or [b""]) or len(data) == 32 * t.width
    # a fresh log over the same files continues where the first stopped
    again = TiledLog(DirectoryTileStorage(tmp_path), 70_000)
    assert again.root() == reference.root()
    assert again.root(301) == reference.root(301)
    assert again.inclusion_proof(65_535, 65_536) == reference.inclusion_proof(65_535, 65_536)
    assert again.consistency_proof(301, 70_000) == reference.consistency_proof(301, 70_000)

    reader = TileReader(lambda p: (tmp_path / p).read_bytes(), 70_000, reference.root())
    reader.verify_root()
    for i in [0, 255, 256, 65_535, 69_999]:
        assert reader.inclusion_proof(i, hashes[i]) == reference.inclusion_proof(i)
    assert reader.consistency_proof(301, reference.root(301)) == reference.consistency_proof(
        301, 70_000
    )
    with pytest.raises(ProofError):
        reader.inclusion_proof(5, hashes[6])
    with pytest.raises(ProofError):
        reader.consistency_proof(301, reference.root(300))


def test_entries_come_from_bundles_and_are_checked() -> None:
    entries = _entries(600)
    log = TiledLog(MemoryTileStorage())
    log.append([leaf_hash(e) for e in entries])
    files = {t.path: log.storage.read_tile(t.level or 0, t.index)[: 32 * t.width] for t in
             tiles_for_size(600)}  # fmt: skip
    for n in range(3):
        chunk = entries[n * 256 : (n + 1) * 256]
        files[entries_path(n, len(chunk))] = encode_bundle(chunk)
    reader = TileReader(files.__getitem__, 600, log.root())
    assert reader.entries(0) == entries[:256]
    assert reader.entries(2) == entries[512:]
    # a bundle that differs from the logged leaves
    files[entries_path(1)] = encode_bundle([b"forged", *entries[257:512]])
    with pytest.raises(TlogError, match="entry 256"):
        reader.entries(1)
    with pytest.raises(TlogError):
        reader.entries(3)


def test_forged_tiles_are_caught() -> None:
    entries = _entries(600)
    log = TiledLog(MemoryTileStorage())
    log.append([leaf_hash(e) for e in entries])
    files = {t.path: log.storage.read_tile(t.level or 0, t.index)[: 32 * t.width] for t in
             tiles_for_size(600)}  # fmt: skip
    root = log.root()
    forged = dict(files)
    tile = bytearray(forged["tile/0/000"])
    tile[0] ^= 1
    forged["tile/0/000"] = bytes(tile)
    forged[entries_path(0)] = encode_bundle([b"forged", *entries[1:256]])
    reader = TileReader(forged.__getitem__, 600, root)
    with pytest.raises(ProofError):
        reader.inclusion_proof(0, leaf_hash(b"forged"))
    with pytest.raises(ProofError):
        reader.entries(0)
    # a partial tile of the wrong width
    short = dict(files)
    short["tile/0/002.p/88"] = files["tile/0/002.p/88"][:-32]
    with pytest.raises(MalformedError):
        TileReader(short.__getitem__, 600, root).inclusion_proof(599, leaf_hash(entries[599]))
    # tiles of another tree do not match the checkpoint's root
    with pytest.raises(TlogError):
        TileReader(files.__getitem__, 600, log.root(599)).verify_root()


def test_append_refuses_storage_behind_the_tree() -> None:
    storage = MemoryTileStorage()
    log = TiledLog(storage)
    log.append([leaf_hash(b"a")] * 10)
    behind = TiledLog(MemoryTileStorage(), 10)
    with pytest.raises(TlogError, match="behind"):
        behind.append([leaf_hash(b"b")])
    with pytest.raises(MalformedError):
        log.append([b"short"])
    with pytest.raises(TlogError):
        log.root(11)
    assert log.append([]) == 10


def test_a_client_behind_uses_full_tiles_when_partial_ones_are_gone() -> None:
    entries = _entries(600)
    log = TiledLog(MemoryTileStorage())
    log.append([leaf_hash(e) for e in entries[:300]])
    old_size, old_root = log.size, log.root()
    log.append([leaf_hash(e) for e in entries[300:]])
    # the log serves the tiles of both sizes, except partial ones whose full tile now exists
    # (tile/0/001.p/44 is gone, tile/1/000.p/1 must stay)
    full = {t.path for t in tiles_for_size(600) if t.width == 256}
    files = {
        t.path: log.storage.read_tile(t.level or 0, t.index)[: 32 * t.width]
        for t in tiles_for_size(300) + tiles_for_size(600)
        if t.width == 256 or Tile(t.level, t.index).path not in full
    }
    assert "tile/0/001.p/44" not in files and "tile/1/000.p/1" in files
    files[entries_path(1)] = encode_bundle(entries[256:512])

    def fetch(path: str) -> bytes:
        if path not in files:
            raise TileNotFound(path)
        return files[path]

    reader = TileReader(fetch, old_size, old_root)
    assert reader.inclusion_proof(299, leaf_hash(entries[299])) == log.inclusion_proof(299, 300)
    assert reader.entries(1) == entries[256:300]
    with pytest.raises(TileNotFound):
        TileReader(fetch, 600, log.root()).entries(2)
