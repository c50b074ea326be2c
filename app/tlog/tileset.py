"""A client's verified share of a log's hash tiles: the level-0 tiles holding its own leaves and
the tiles above them, each bound to a signed checkpoint.

A full tile is bound by its Merkle tree hash, which must be the hash at its position in its
parent tile (the tile one level up); a partial tile is a right edge of the tree and is bound by
the checkpoint's root, which the right-edge tiles of every level combine to. The top level of
any tree is a partial tile, so every chain of parents ends at a tile the root binds. A tile
verified against one checkpoint stays valid under every later checkpoint consistent with it
(its hashes are complete subtrees of the older tree), so tiles are verified once and kept.

Verifying a level-0 tile costs about one SHA-256 per leaf it holds (255 node hashes for 256
leaves), against about log2(size) per leaf for one inclusion proof per leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from app.tlog.errors import MalformedError, ProofError
from app.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE
from app.tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    HashSource,
    full_tile_root,
    tile_path,
    tile_width,
)

TileKey = tuple[int, int]  # (level, index)
FetchTiles = Callable[[list[tuple[int, int, int]]], Mapping[tuple[int, int, int], bytes]]


def right_edge(size: int) -> list[tuple[int, int, int]]:
    """The partial tiles (level, index, width) of a tree of `size` leaves: what its root is
    computed from besides complete subtrees (one per level at most)."""
    out: list[tuple[int, int, int]] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        if count % TILE_WIDTH:
            out.append((level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return out


def root_from_tiles(size: int, tiles: Mapping[TileKey, bytes]) -> bytes:
    """The root of a tree of `size` leaves from its right-edge tiles (stored tiles may be
    wider: their first hashes never change)."""

    def load(level: int, index: int, width: int) -> bytes:
        data = tiles.get((level, index), b"")
        if len(data) < width * HASH_SIZE:
            raise MalformedError(f"no tile {tile_path(level, index, width)} to compute a root")
        return data

    return HashSource(size, load, cache_tiles=0).root()


class TileSet:
    """Hash tiles verified against a checkpoint (size, root), growing as leaves are asked.

    `held` are tiles verified before (under this checkpoint or an earlier one it is consistent
    with); `ensure` fetches what the given leaf indexes need and verifies it; `added` is what
    was fetched and verified since the set was made (what a caller stores).
    """

    def __init__(self, size: int, root: bytes, held: Mapping[TileKey, bytes] | None = None) -> None:
        if not 0 <= size < MAX_TREE_SIZE:
            raise MalformedError(f"tree size {size} is out of range")
        self.size = size
        self.root = root
        self.tiles: dict[TileKey, bytes] = dict(held or {})
        self.added: dict[TileKey, bytes] = {}
        self._edge_checked = False

    def has(self, level: int, index: int, position: int) -> bool:
        return len(self.tiles.get((level, index), b"")) > position * HASH_SIZE

    def leaf_hash_at(self, index: int) -> bytes:
        tile, pos = divmod(index, TILE_WIDTH)
        data = self.tiles[(0, tile)]
        return data[pos * HASH_SIZE : (pos + 1) * HASH_SIZE]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """The audit path of leaf `index` from the tiles held (those `ensure` fetched for it:
        its tile, their parents and the right edge hold every hash the path needs)."""
        return HashSource(self.size, self._load, cache_tiles=0).inclusion_proof(index)

    def _load(self, level: int, index: int, width: int) -> bytes:
        data = self.tiles.get((level, index), b"")
        if len(data) < width * HASH_SIZE:
            raise MalformedError(f"no tile {tile_path(level, index, width)} held")
        return data

    def missing(self, leaf_indexes: Iterable[int]) -> list[tuple[int, int, int]]:
        """The tiles (level, index, width at this size) to fetch before the hashes of
        `leaf_indexes` can be read verified: their level-0 tiles, the parents of every full
        tile among them up to the top, and the right edge (once)."""
        want: dict[TileKey, int] = {}
        leaves = list(leaf_indexes)
        if leaves and (min(leaves) < 0 or max(leaves) >= self.size):
            leaf = next(leaf for leaf in leaves if not 0 <= leaf < self.size)
            raise ProofError(f"leaf {leaf} is not in a tree of size {self.size}")
        # A tile holds a leaf's hash when it holds its last one among them.
        last = {leaf // TILE_WIDTH: leaf for leaf in sorted(leaves)}
        held = self.tiles
        for tile, leaf in last.items():
            if len(held.get((0, tile), b"")) <= leaf % TILE_WIDTH * HASH_SIZE:
                want[(0, tile)] = tile_width(self.size, 0, tile)
        if not want:
            return []
        if not self._edge_checked:
            for level, index, width in right_edge(self.size):
                if len(self.tiles.get((level, index), b"")) < width * HASH_SIZE:
                    want[(level, index)] = width
        todo = [k for k, w in want.items() if w == TILE_WIDTH]
        while todo:
            level, index = todo.pop()
            parent = (level + 1, index // TILE_WIDTH)
            if parent in want or self.has(parent[0], parent[1], index % TILE_WIDTH):
                continue
            width = tile_width(self.size, *parent)
            want[parent] = width
            if width == TILE_WIDTH:
                todo.append(parent)
        return sorted((lv, ix, w) for (lv, ix), w in want.items())

    def ensure(self, leaf_indexes: Iterable[int], fetch: FetchTiles) -> dict[TileKey, bytes]:
        """Fetch and verify what `leaf_indexes` need; the tiles added. Raises ProofError when
        a fetched tile is not bound to the checkpoint (nothing is added then)."""
        need = self.missing(leaf_indexes)
        if not need:
            return {}
        got = fetch(need)
        batch: dict[TileKey, bytes] = {}
        for level, index, width in need:
            data = got.get((level, index, width))
            if data is None or len(data) != width * HASH_SIZE:
                raise MalformedError(
                    f"{tile_path(level, index, width)} was not served with {width} hashes"
                )
            old = self.tiles.get((level, index), b"")
            if data[: len(old)] != old[: len(data)]:
                raise ProofError(
                    f"{tile_path(level, index, width)} differs from the same tile verified "
                    "before: the log changed a hash it had committed to"
                )
            batch[(level, index)] = data
        self.verify_batch(batch)
        self.tiles.update(batch)
        self.added.update(batch)
        self._edge_checked = True
        return batch

    def verify_batch(self, batch: Mapping[TileKey, bytes]) -> None:
        """Each full tile of `batch` against its parent's hash (from the batch or held), then
        the right edge against the root."""
        merged = {**self.tiles, **batch}
        for (level, index), data in batch.items():
            if len(data) != TILE_WIDTH * HASH_SIZE:
                continue
            parent = merged.get((level + 1, index // TILE_WIDTH), b"")
            pos = (index % TILE_WIDTH) * HASH_SIZE
            want = parent[pos : pos + HASH_SIZE]
            if len(want) != HASH_SIZE:
                raise ProofError(f"no parent hash for {tile_path(level, index)}")
            if full_tile_root(data) != want:
                raise ProofError(
                    f"{tile_path(level, index)} does not hash to its entry in the tile above "
                    f"(tree size {self.size})"
                )
        if self.size and root_from_tiles(self.size, merged) != self.root:
            raise ProofError(f"the log's tiles do not match its checkpoint of size {self.size}")


def verify_stored_tiles(
    tiles: Mapping[TileKey, bytes], sizes: Mapping[TileKey, int], roots: Mapping[int, bytes]
) -> list[str]:
    """Offline re-verification of stored tiles (what `audit` does): every full tile against
    its parent's hash, every partial tile against the root of the checkpoint it was verified
    at (`sizes`), whose right edge the stored tiles (only ever widened) still hold. Problems
    as text (empty: all bound)."""
    problems: list[str] = []
    checked: set[int] = set()
    for (level, index), data in sorted(tiles.items()):
        width = len(data) // HASH_SIZE
        if width == TILE_WIDTH:
            parent = tiles.get((level + 1, index // TILE_WIDTH), b"")
            pos = (index % TILE_WIDTH) * HASH_SIZE
            if full_tile_root(data) != parent[pos : pos + HASH_SIZE]:
                problems.append(f"{tile_path(level, index)} does not hash to its parent's entry")
            continue
        size = sizes[(level, index)]
        if tile_width(size, level, index) != width:
            problems.append(f"{tile_path(level, index, width)} is not a right edge of {size}")
            continue
        if size in checked:
            continue
        checked.add(size)
        root = roots.get(size)
        try:
            if root is None:
                raise ProofError(f"no stored checkpoint of size {size}")
            if root_from_tiles(size, tiles) != root:
                raise ProofError(f"the stored tiles do not match the checkpoint of size {size}")
        except (ProofError, MalformedError) as exc:
            problems.append(str(exc))
    return problems
