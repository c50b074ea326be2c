"""The C2SP tlog-tiles layout: tile paths, entry bundles, and a Merkle tree kept as hash tiles.

A tile at level L holds up to 256 consecutive Merkle tree hashes of height 8·L: level 0 the leaf
hashes, level 1 the roots of full level-0 tiles, and so on. Everything a log needs (roots,
inclusion and consistency proofs, appends) is computed from tiles, so tiles are the only thing
a log has to store: :class:`TiledLog` keeps them in any :class:`TileStorage` (a table, files,
memory), and :class:`TileReader` computes and verifies proofs from tiles fetched over HTTP the
way any tlog-tiles client does.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.tlog.errors import MalformedError, TlogError
from app.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    _sha256,
    consistency_proof,
    inclusion_proof,
    split_point,
    verify_consistency,
    verify_inclusion,
)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_ENTRY_BYTES)
ENTRIES = "entries"


@dataclass(frozen=True, order=True)
class Tile:
    """A tile coordinate: ``level`` (None for an entry bundle), ``index``, ``width`` 1..256."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level is not None and not 0 <= self.level <= MAX_LEVEL:
            raise MalformedError(f"tile level {self.level} is not in 0..{MAX_LEVEL}")
        if self.index < 0:
            raise MalformedError(f"tile index {self.index} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise MalformedError(f"tile width {self.width} is not in 1..{TILE_WIDTH}")

    @property
    def path(self) -> str:
        level = ENTRIES if self.level is None else str(self.level)
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{suffix}"


def encode_index(n: int) -> str:
    """Index 1234067 → ``x001/x234/067``: 3-digit elements, all but the last x-prefixed."""
    if n < 0:
        raise MalformedError(f"tile index {n} is negative")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    return Tile(level, index, width).path


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    return Tile(None, index, width).path


_PATH = re.compile(
    r"tile/(0|[1-9][0-9]?|entries)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?"
)


def parse_tile_path(path: str) -> Tile:
    """The tile a path names; strict (no leading zeros, no empty or wide partials)."""
    m = _PATH.fullmatch(path)
    if m is None:
        raise MalformedError(f"not a tile path: {path[:200]!r}")
    level_s, index_s, width_s = m.groups()
    elements = index_s.split("/")
    if len(elements) > 1 and elements[0] == "x000":
        raise MalformedError(f"tile index with a leading zero element: {path!r}")
    index = int("".join(e.lstrip("x") for e in elements))
    width = int(width_s) if width_s else TILE_WIDTH
    if width_s and width >= TILE_WIDTH:
        raise MalformedError(f"partial tile width {width} is not below {TILE_WIDTH}: {path!r}")
    level = None if level_s == ENTRIES else int(level_s)
    return Tile(level, index, width)


def tile_width(size: int, level: int, index: int) -> int:
    """How many hashes tile (level, index) has in a tree of ``size`` leaves (0: none)."""
    count = size >> (TILE_HEIGHT * level)  # hashes at this tile level
    full = count >> TILE_HEIGHT
    if index < full:
        return TILE_WIDTH
    if index == full:
        return count & (TILE_WIDTH - 1)
    return 0


def tiles_for_size(size: int) -> list[Tile]:
    """Every hash tile a tree of ``size`` leaves is made of (full ones and its partial ones)."""
    out: list[Tile] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        out.extend(Tile(level, n) for n in range(count >> TILE_HEIGHT))
        if count & (TILE_WIDTH - 1):
            out.append(Tile(level, count >> TILE_HEIGHT, count & (TILE_WIDTH - 1)))
        level += 1
    return out


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The hash tiles a tree has at ``new_size`` that it did not have (at that width) at
    ``old_size``: what a log publishes after an append."""
    old = set(tiles_for_size(old_size))
    return [t for t in tiles_for_size(new_size) if t not in old]


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry prefixed by its length as a big-endian uint16."""
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY_BYTES:
            raise MalformedError(f"log entry of {len(e)} bytes, more than {MAX_ENTRY_BYTES}")
        out += len(e).to_bytes(2, "big")
        out += e
    return bytes(out)


def decode_bundle(data: bytes, count: int | None = None) -> list[bytes]:
    """The entries of a bundle; with ``count``, exactly that many or an error."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise MalformedError(f"entry bundle of {len(data)} bytes, more than 256 entries can fill")
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if len(entries) == TILE_WIDTH:
            raise MalformedError(f"entry bundle holds more than {TILE_WIDTH} entries")
        if end - pos < 2:
            raise MalformedError("entry bundle ends inside a length prefix")
        n = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if end - pos < n:
            raise MalformedError("entry bundle ends inside an entry")
        entries.append(data[pos : pos + n])
        pos += n
    if count is not None and len(entries) != count:
        raise MalformedError(f"entry bundle holds {len(entries)} entries, expected {count}")
    return entries


def split_hashes(data: bytes) -> list[bytes]:
    if len(data) % HASH_SIZE:
        raise MalformedError(f"tile of {len(data)} bytes is not a whole number of hashes")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _levels(hashes: list[bytes]) -> list[list[bytes]]:
    """All complete-subtree levels over a tile's hashes (level 0 = the hashes themselves)."""
    levels = [hashes]
    sha = _sha256
    cur = hashes
    while len(cur) > 1:
        cur = [sha(b"\x01" + cur[i] + cur[i + 1]).digest() for i in range(0, len(cur) - 1, 2)]
        levels.append(cur)
    return levels


def full_tile_root(data: bytes) -> bytes:
    """The Merkle tree hash of a full tile's 256 hashes: its entry in the tile level above."""
    return _levels(split_hashes(data))[-1][0]


# (level, index, width) → the tile's hashes and the levels of complete subtrees above them
TileCache = OrderedDict[tuple[int, int, int], list[list[bytes]]]


class HashSource:
    """Merkle tree hashes of a tree of ``size`` leaves, computed from its hash tiles.

    ``load(level, index, width)`` returns the first ``width`` hashes of a tile (more bytes are
    ignored). The first ``width`` hashes of a tile never change in an append-only log, so the
    tiles' inner levels are kept in a bounded cache, which sources of one log may share.
    """

    def __init__(
        self,
        size: int,
        load: Callable[[int, int, int], bytes],
        cache_tiles: int = 1024,
        cache: TileCache | None = None,
    ) -> None:
        if not 0 <= size < MAX_TREE_SIZE:
            raise MalformedError(f"tree size {size} is out of range")
        self.size = size
        self._load = load
        self._cache: TileCache = OrderedDict() if cache is None else cache
        self._cache_tiles = cache_tiles

    def tile_levels(self, level: int, index: int) -> list[list[bytes]]:
        width = tile_width(self.size, level, index)
        if width == 0:
            raise TlogError(f"tile {level}/{index} is outside the tree of size {self.size}")
        key = (level, index, width)
        levels = self._cache.get(key)
        if levels is not None:
            self._cache.move_to_end(key)
            return levels
        data = self._load(level, index, width)
        need = width * HASH_SIZE
        if len(data) < need:
            raise MalformedError(
                f"tile {tile_path(level, index, width)} has {len(data)} bytes, expected {need}"
            )
        levels = _levels(split_hashes(bytes(data[:need])))
        self._cache[key] = levels
        if len(self._cache) > self._cache_tiles:
            self._cache.popitem(last=False)
        return levels

    def node(self, height: int, index: int) -> bytes:
        """The hash of the complete subtree of 2**height leaves starting at leaf index·2**height."""
        if (index + 1) << height > self.size:
            raise TlogError(f"node {height}/{index} is not complete in a tree of size {self.size}")
        level, inner = divmod(height, TILE_HEIGHT)
        pos = index << inner
        tile_index, offset = divmod(pos, TILE_WIDTH)
        return self.tile_levels(level, tile_index)[inner][offset >> inner]

    def subtree(self, lo: int, hi: int) -> bytes:
        """The Merkle tree hash of leaves [lo, hi), for the ranges RFC 6962 proofs use."""
        n = hi - lo
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self.node(n.bit_length() - 1, lo // n)
        k = split_point(n)
        return _sha256(b"\x01" + self.subtree(lo, lo + k) + self.subtree(lo + k, hi)).digest()

    def root(self) -> bytes:
        return self.subtree(0, self.size)

    def inclusion_proof(self, index: int) -> list[bytes]:
        return inclusion_proof(index, self.size, self.subtree)

    def consistency_proof(self, old_size: int) -> list[bytes]:
        return consistency_proof(old_size, self.size, self.subtree)


class TileStorage(Protocol):
    """Where a log keeps its hash tiles, keyed by (level, index).

    A stored tile may be longer than a given tree size needs: a tile grows in place as the tree
    grows, and the first w hashes of it are the partial tile of width w, forever.
    """

    def read_tile(self, level: int, index: int) -> bytes:
        """The stored hashes of the tile, or b"" when there is none."""
        ...

    def write_tiles(self, tiles: Mapping[tuple[int, int], bytes]) -> None:
        """Store these tiles (replacing shorter contents), all or nothing."""
        ...


class MemoryTileStorage:
    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], bytes] = {}

    def read_tile(self, level: int, index: int) -> bytes:
        return self.tiles.get((level, index), b"")

    def write_tiles(self, tiles: Mapping[tuple[int, int], bytes]) -> None:
        self.tiles.update(tiles)


class DirectoryTileStorage:
    """Hash tiles as files in the tlog-tiles layout under ``root``, ready to serve statically:
    full tiles at ``tile/L/N``, the current partial one at ``tile/L/N.p/W`` (older partial
    widths are kept, as a log must serve the partial tiles of every checkpoint it signed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_tile(self, level: int, index: int) -> bytes:
        full = self.root / tile_path(level, index)
        if full.exists():
            return full.read_bytes()
        partial_dir = self.root / (tile_path(level, index) + ".p")
        if not partial_dir.is_dir():
            return b""
        widths = [int(p.name) for p in partial_dir.iterdir() if p.name.isdigit()]
        if not widths:
            return b""
        return (partial_dir / str(max(widths))).read_bytes()

    def write_tiles(self, tiles: Mapping[tuple[int, int], bytes]) -> None:
        for (level, index), data in sorted(tiles.items()):
            width = len(data) // HASH_SIZE
            path = self.root / tile_path(level, index, width)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)


class TiledLog:
    """An append-only Merkle tree whose only state is its size and its hash tiles.

    ``append`` takes a whole batch of leaf hashes and writes every tile it changed in one
    ``write_tiles`` call: about two hashes per leaf, plus at most one partial tile read per
    level, however large the tree. The caller persists ``size`` with the tiles (typically in
    the same transaction as the checkpoint it signs); when that transaction fails, it drops
    this object and opens a new one at the persisted size.
    """

    def __init__(self, storage: TileStorage, size: int = 0) -> None:
        if not 0 <= size < MAX_TREE_SIZE:
            raise MalformedError(f"tree size {size} is out of range")
        self.storage = storage
        self.size = size
        self._sources: dict[int, HashSource] = {}
        self._cache: TileCache = OrderedDict()

    def _load(self, level: int, index: int, width: int) -> bytes:
        return self.storage.read_tile(level, index)

    def source(self, size: int | None = None) -> HashSource:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise TlogError(f"tree size {size} is beyond the log's size {self.size}")
        src = self._sources.get(size)
        if src is None:
            src = HashSource(size, self._load, cache=self._cache)
            self._sources = {size: src}
        return src

    def append(self, leaf_hashes: Sequence[bytes]) -> int:
        """Append the leaves; return the index of the first one."""
        start = self.size
        if not leaf_hashes:
            return start
        if start + len(leaf_hashes) >= MAX_TREE_SIZE:
            raise TlogError("the log is full")
        for h in leaf_hashes:
            if len(h) != HASH_SIZE:
                raise MalformedError(f"leaf hash of {len(h)} bytes, expected {HASH_SIZE}")
        updates: dict[tuple[int, int], bytes] = {}
        new: list[bytes] = list(leaf_hashes)
        first = start  # position of new[0] at this tile level
        level = 0
        while new:
            tile_index, offset = divmod(first, TILE_WIDTH)
            head = b""
            if offset:
                stored = self.storage.read_tile(level, tile_index)
                if len(stored) < offset * HASH_SIZE:
                    raise TlogError(
                        f"tile {level}/{tile_index} holds {len(stored) // HASH_SIZE} hashes, "
                        f"the tree needs {offset}: the tile storage is behind the tree size"
                    )
                head = stored[: offset * HASH_SIZE]
            buf = head + b"".join(new)
            parents: list[bytes] = []
            for i in range(0, len(buf), FULL_TILE_BYTES):
                chunk = buf[i : i + FULL_TILE_BYTES]
                updates[(level, tile_index + i // FULL_TILE_BYTES)] = chunk
                if len(chunk) == FULL_TILE_BYTES:
                    parents.append(full_tile_root(chunk))
            new, first, level = parents, tile_index, level + 1
        self.storage.write_tiles(updates)
        self.size = start + len(leaf_hashes)
        self._sources = {}
        return start

    def root(self, size: int | None = None) -> bytes:
        return self.source(size).root()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self.source(size).inclusion_proof(index)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return self.source(new_size).consistency_proof(old_size)


Fetch = Callable[[str], bytes]


class TileNotFound(TlogError):
    """Raised by a ``fetch`` function for a path the log does not serve (HTTP 404)."""


class TileReader:
    """A tlog-tiles client view of a log at a verified checkpoint (``size``, ``root``).

    Tiles come from ``fetch(path)`` (relative to the log prefix) and are untrusted: every proof
    computed from them is verified against the checkpoint's root before it is returned, and an
    entry bundle is checked against its level-0 tile, which is checked against the root.
    """

    def __init__(self, fetch: Fetch, size: int, root: bytes, cache_tiles: int = 1024) -> None:
        if len(root) != HASH_SIZE:
            raise MalformedError("the root hash is not 32 bytes")
        self._fetch = fetch
        self.size = size
        self.root = root
        self.hashes = HashSource(size, self._load, cache_tiles)
        self._checked_tiles: set[tuple[int, int]] = set()

    def _load(self, level: int, index: int, width: int) -> bytes:
        path = tile_path(level, index, width)
        try:
            data = self._fetch(path)
        except TileNotFound:
            if width == TILE_WIDTH:
                raise
            # a log may drop a partial tile once the full one exists: its prefix is the same
            path = tile_path(level, index)
            data = self._fetch(path)
            if len(data) != FULL_TILE_BYTES:
                raise MalformedError(f"{path} has {len(data)} bytes, not a full tile") from None
            return data[: width * HASH_SIZE]
        if len(data) != width * HASH_SIZE:
            raise MalformedError(f"{path} has {len(data)} bytes, expected {width * HASH_SIZE}")
        return data

    def verify_root(self) -> None:
        """Check the tiles of the right edge combine to the checkpoint's root."""
        if self.size and self.hashes.root() != self.root:
            raise TlogError(f"the log's tiles do not match its checkpoint of size {self.size}")

    def inclusion_proof(self, index: int, leaf: bytes) -> list[bytes]:
        proof = self.hashes.inclusion_proof(index)
        verify_inclusion(index, self.size, leaf, proof, self.root)
        return proof

    def consistency_proof(self, old_size: int, old_root: bytes) -> list[bytes]:
        proof = self.hashes.consistency_proof(old_size)
        verify_consistency(old_size, self.size, old_root, self.root, proof)
        return proof

    def leaf_hashes(self, bundle_index: int) -> list[bytes]:
        """The verified level-0 hashes of one bundle's worth of entries."""
        width = tile_width(self.size, 0, bundle_index)
        if width == 0:
            raise TlogError(f"entry bundle {bundle_index} is outside the tree of size {self.size}")
        levels = self.hashes.tile_levels(0, bundle_index)
        hashes = levels[0]
        if (0, bundle_index) not in self._checked_tiles:
            lo = bundle_index * TILE_WIDTH
            if width == TILE_WIDTH:
                # the tile's root is a complete node of height 8: its audit path is the one of
                # its first leaf without the 8 hashes inside the tile
                top = levels[TILE_HEIGHT][0]  # from this tile, not from the level above
                path = self.hashes.inclusion_proof(lo)[TILE_HEIGHT:]
                units = -(-self.size // TILE_WIDTH)
                verify_inclusion(bundle_index, units, top, path, self.root)
            else:
                for i, h in enumerate(hashes):
                    verify_inclusion(
                        lo + i, self.size, h, self.hashes.inclusion_proof(lo + i), self.root
                    )
            self._checked_tiles.add((0, bundle_index))
        return hashes

    def entries(self, bundle_index: int) -> list[bytes]:
        """The entries of one bundle, each checked to be the leaf the log committed to."""
        hashes = self.leaf_hashes(bundle_index)
        path = entries_path(bundle_index, len(hashes))
        try:
            entries = decode_bundle(self._fetch(path), len(hashes))
        except TileNotFound:
            if len(hashes) == TILE_WIDTH:
                raise
            path = entries_path(bundle_index)
            entries = decode_bundle(self._fetch(path), TILE_WIDTH)[: len(hashes)]
        for i, (e, h) in enumerate(zip(entries, hashes, strict=True)):
            if _sha256(b"\x00" + e).digest() != h:
                raise TlogError(
                    f"entry {bundle_index * TILE_WIDTH + i} in {path} is not the logged leaf"
                )
        return entries
