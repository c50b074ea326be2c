"""A client's verified tiles (app.tlog.tileset): the tiles a set of leaves needs, verified
against a checkpoint's root; a changed hash anywhere in them is refused; stored tiles
re-verified offline; inclusion proofs computed from them equal the log's own."""

from __future__ import annotations

import hashlib

import pytest

from app.tlog import MemoryTileStorage, MemoryTree, ProofError, TiledLog, leaf_hash
from app.tlog.merkle import HASH_SIZE
from app.tlog.tiles import TILE_WIDTH
from app.tlog.tileset import TileSet, right_edge, root_from_tiles, verify_stored_tiles

Need = list[tuple[int, int, int]]


def _log(size: int) -> tuple[TiledLog, list[bytes]]:
    data = [hashlib.sha256(str(i).encode()).digest() for i in range(size)]
    hashes = [leaf_hash(d) for d in data]
    log = TiledLog(MemoryTileStorage())
    log.append(hashes)
    return log, hashes


def _server(log: TiledLog, served: list[Need], change: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """Tiles as a registry serves them (at the width asked); `change` flips one hash's byte."""

    def fetch(need: Need) -> dict[tuple[int, int, int], bytes]:
        served.append(need)
        out = {}
        for level, index, width in need:
            data = bytearray(log.storage.read_tile(level, index)[: width * HASH_SIZE])
            if change == (level, index):
                data[5] ^= 1
            out[(level, index, width)] = bytes(data)
        return out

    return fetch


@pytest.mark.parametrize("size", [1, 255, 256, 257, 65536, 65536 + 300, 150_000])
def test_tiles_of_any_leaves_verify_and_give_their_hashes(size: int) -> None:
    log, hashes = _log(size)
    root = log.source(size).root()
    assert root == MemoryTree(hashes).root()
    ts = TileSet(size, root)
    served: list[Need] = []
    want = sorted({0, size - 1, size // 2, min(size - 1, 300)})
    ts.ensure(want, _server(log, served))
    for i in want:
        assert ts.leaf_hash_at(i) == hashes[i]
        assert ts.inclusion_proof(i) == log.source(size).inclusion_proof(i)
    # a second ask for held leaves fetches nothing
    assert ts.ensure(want, _server(log, served)) == {}
    assert len(served) == 1
    assert root_from_tiles(size, ts.tiles) == root


@pytest.mark.parametrize("size", [300, 65536 + 300, 150_000])
def test_a_changed_hash_in_any_fetched_tile_is_refused(size: int) -> None:
    log, _ = _log(size)
    root = log.source(size).root()
    need = TileSet(size, root).missing([0, size - 1])
    assert any(w == TILE_WIDTH for _l, _i, w in need) and any(w < TILE_WIDTH for *_, w in need)
    for level, index, _w in need:
        ts = TileSet(size, root)
        with pytest.raises(ProofError):
            ts.ensure([0, size - 1], _server(log, [], change=(level, index)))
        assert ts.tiles == {} and ts.added == {}  # nothing of a refused batch is kept


def test_held_tiles_serve_a_larger_tree_and_are_only_widened() -> None:
    log, hashes = _log(70_000)
    small = 65_000
    first = TileSet(small, log.source(small).root())
    first.ensure([10, small - 1], _server(log, []))
    held = dict(first.tiles)
    ts = TileSet(70_000, log.source(70_000).root(), held)
    served: list[Need] = []
    ts.ensure([20, small - 1, small, 69_999], _server(log, served))
    fetched = {(lv, ix) for lv, ix, _w in served[0]}
    assert (0, 0) not in fetched  # a full tile verified before is not fetched again
    assert (0, small // TILE_WIDTH) in fetched  # a partial one is fetched wider for a new leaf
    assert ts.leaf_hash_at(small - 1) == hashes[small - 1]
    assert ts.leaf_hash_at(small) == hashes[small]
    # a wider tile whose first hashes differ from the ones verified before is refused
    bad = TileSet(70_000, log.source(70_000).root(), held)
    with pytest.raises(ProofError, match="differs"):
        bad.ensure([small], _server(log, [], change=(0, small // TILE_WIDTH)))


def test_stored_tiles_are_reverified_offline() -> None:
    log, _ = _log(66_000)
    size = 66_000
    root = log.source(size).root()
    ts = TileSet(size, root)
    ts.ensure(range(0, size, 97), _server(log, []))
    sizes = dict.fromkeys(ts.tiles, size)
    assert verify_stored_tiles(ts.tiles, sizes, {size: root}) == []
    edge = {(lv, ix) for lv, ix, _w in right_edge(size)}
    for key in [(0, 3), next(iter(edge)), (1, 0)]:
        tiles = dict(ts.tiles)
        data = bytearray(tiles[key])
        data[0] ^= 1
        tiles[key] = bytes(data)
        assert verify_stored_tiles(tiles, sizes, {size: root}), key
    assert verify_stored_tiles(ts.tiles, sizes, {}) != []  # no checkpoint: not verified


def test_a_leaf_outside_the_tree_is_named_in_the_order_asked() -> None:
    log, _ = _log(300)
    ts = TileSet(300, log.source(300).root())
    with pytest.raises(ProofError, match="leaf 300 is not in a tree of size 300"):
        ts.missing([5, 300, -1])
    with pytest.raises(ProofError, match="leaf -1 is not"):
        ts.missing([-1, 300])
    # leaves in any order: one level-0 tile for those of the same tile, the right edge once
    want = [(0, 0, 256), (0, 1, 44), (1, 0, 1)]
    assert ts.missing([299, 3, 256]) == ts.missing([3, 256, 299]) == want
