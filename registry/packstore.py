"""Pack files: many small blobs in one file, so 10,000 blobs of 4 KB cost one file, not 10,000.

Why: on the filesystem a file create + folder fan-out costs ~0.5-1 ms of kernel CPU per blob,
which dominated small-file uploads. A batch of small blobs is written as ONE pack file:

    blob bytes concatenated | index: count x (sha256[32], offset u64, size u64) | footer

footer = index offset u64, count u64, sha256 of the index bytes [32], MAGIC [8]. The pack is
written under root/.tmp, fsynced, renamed into root/packs/ and the folder fsynced, so a pack is
all or nothing. Only then is it recorded in the store-owned index (sqlite3 in WAL,
root/packs/index.sqlite3: sha256 -> pack, offset, size). If the process dies between the
rename and the index commit, the next open finds the pack missing from the index and re-reads
its self-describing trailer; a pack whose trailer does not check out is moved to
root/packs/corrupt/ and serves nothing. Reads verify each packed blob's sha256 before handing
the bytes out, and a pack shorter or longer than recorded serves nothing (its blobs are absent,
so the client is asked for them again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
import struct
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from app.durable import atomic_write

log = logging.getLogger(__name__)

MAGIC = b"CDPACK01"
ENTRY = struct.Struct(">32sQQ")  # raw sha256, offset, size
FOOTER = struct.Struct(">QQ32s8s")  # index offset, count, sha256(index bytes), MAGIC
PACK_SUFFIX = ".pack"
TMP_PREFIX = "pack-"
STALE_TMP_S = 600  # a temp pack this old belongs to a dead writer (a batch takes seconds)
_ROWS_PER_INSERT = 200  # 800 parameters: under SQLite's oldest default limit (999)


class CorruptBlobError(OSError):
    """A packed blob's bytes do not match its sha256 or its pack is damaged: never served."""


class CorruptPackError(ValueError):
    """A pack file's trailer is missing, truncated or inconsistent."""


class Location(NamedTuple):
    """Where a packed blob lives (a plain tuple: finalize builds 10,000 of them)."""

    pack: str
    offset: int
    size: int


def encode_trailer(entries: Sequence[tuple[str, int, int]], index_offset: int) -> bytes:
    """Index + footer for entries [(sha256 hex, offset, size)] whose bytes end at index_offset."""
    index = b"".join(ENTRY.pack(bytes.fromhex(s), off, n) for s, off, n in entries)
    digest = hashlib.sha256(index).digest()
    return index + FOOTER.pack(index_offset, len(entries), digest, MAGIC)


def read_trailer(path: Path) -> list[tuple[str, int, int]]:
    """The entries a pack file describes, after checking its footer, index and extents."""
    with path.open("rb") as fh:
        total = os.fstat(fh.fileno()).st_size
        if total < FOOTER.size:
            raise CorruptPackError(f"{path.name}: shorter than a pack footer")
        fh.seek(total - FOOTER.size)
        index_offset, count, digest, magic = FOOTER.unpack(fh.read(FOOTER.size))
        if magic != MAGIC:
            raise CorruptPackError(f"{path.name}: no pack footer (truncated?)")
        if index_offset + count * ENTRY.size + FOOTER.size != total:
            raise CorruptPackError(f"{path.name}: index does not fit the file size")
        fh.seek(index_offset)
        index = fh.read(count * ENTRY.size)
    if hashlib.sha256(index).digest() != digest:
        raise CorruptPackError(f"{path.name}: index checksum mismatch")
    entries = []
    for raw, off, n in ENTRY.iter_unpack(index):
        if off + n > index_offset:
            raise CorruptPackError(f"{path.name}: an entry reaches past the blob data")
        entries.append((raw.hex(), off, n))
    return entries


class PackIndex:
    """sha256 -> (pack, offset, size) in a sqlite3 file owned by the store (not the registry DB:
    it can always be rebuilt from the packs' trailers). One connection behind a lock."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn = conn
        self._closer = weakref.finalize(self, conn.close)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit lost in a power cut is re-derived from the (fsynced) pack trailers.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS packs (name TEXT PRIMARY KEY, size INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS blobs (
                sha256 TEXT PRIMARY KEY, pack TEXT NOT NULL,
                "offset" INTEGER NOT NULL, size INTEGER NOT NULL
            ) WITHOUT ROWID;
            """
        )

    def close(self) -> None:
        self._closer()

    def pack_sizes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute("SELECT name, size FROM packs").fetchall())

    def lookup(self, shas: Sequence[str]) -> dict[str, tuple[Location, int]]:
        """{sha: (location, recorded pack size)} for the shas the index knows."""
        return {
            sha: (Location(pack, off, n), pack_size)
            for sha, pack, off, n, pack_size in self._rows('b."offset", b.size', shas)
        }

    def sized(self, shas: Sequence[str]) -> list[tuple[str, str, int, int]]:
        """[(sha, pack, blob size, recorded pack size)] for the shas the index knows."""
        return self._rows("b.size", shas)

    def _rows(self, columns: str, shas: Sequence[str]) -> list[Any]:
        """sha, pack, `columns`, pack size of the listed shas: ONE statement, the shas as one
        JSON parameter (finalize asks for 10,000 at once; IN lists of 500 took ~3x longer)."""
        if not shas:
            return []
        with self._lock:
            return self._conn.execute(
                f"SELECT b.sha256, b.pack, {columns}, p.size FROM blobs b "
                "JOIN packs p ON p.name = b.pack "
                "WHERE b.sha256 IN (SELECT value FROM json_each(?))",
                (json.dumps(list(shas)),),
            ).fetchall()

    def add_pack(self, name: str, size: int, entries: Iterable[tuple[str, int, int]]) -> None:
        """Record a durable pack; a sha already recorded elsewhere now points here (the old
        location may be damaged: writers skip blobs whose packs are sound)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO packs (name, size) VALUES (?, ?)", (name, size)
                )
                # Multi-row VALUES: executemany's statement step per row cost ~3x the inserts.
                rows = [(sha, name, off, n) for sha, off, n in entries]
                for start in range(0, len(rows), _ROWS_PER_INSERT):
                    part = rows[start : start + _ROWS_PER_INSERT]
                    self._conn.execute(
                        'INSERT OR REPLACE INTO blobs (sha256, pack, "offset", size) VALUES '
                        + ", ".join(["(?, ?, ?, ?)"] * len(part)),
                        [v for row in part for v in row],
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise


class PackStore:
    """The packed half of FileBlobStore: writes packs, finds and reads packed blobs."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.dir = root / "packs"
        self.tmp_dir = tmp_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index_path = self.dir / "index.sqlite3"
        self._index: PackIndex | None = None
        self._index_lock = threading.Lock()
        self.recover()

    @property
    def index(self) -> PackIndex:
        """The index, created with the first pack (a store of loose blobs only has none)."""
        with self._index_lock:
            if self._index is None:
                self._index = PackIndex(self._index_path)
            return self._index

    def _index_if_any(self) -> PackIndex | None:
        """The index if packs exist (no file is created just to answer "not packed")."""
        if self._index is None and not self._index_path.exists():
            return None
        return self.index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()

    def recover(self) -> None:
        """Index packs that were renamed into place but not recorded (crash between the two),
        set damaged ones aside, and delete temp packs of dead writers."""
        now = time.time()
        for tmp in self.tmp_dir.glob(TMP_PREFIX + "*"):
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_S:
                    tmp.unlink()
            except FileNotFoundError:
                pass
        packs = sorted(self.dir.glob("*" + PACK_SUFFIX))
        if not packs:
            return
        known = self.index.pack_sizes()
        for path in packs:
            if path.name in known:
                continue
            try:
                entries = read_trailer(path)
            except (CorruptPackError, OSError) as exc:
                log.error("blob pack set aside, it serves nothing: %s", exc)
                corrupt = self.dir / "corrupt"
                corrupt.mkdir(exist_ok=True)
                os.replace(path, corrupt / path.name)
                continue
            log.warning("blob pack %s recovered from its trailer", path.name)
            self.index.add_pack(path.name, path.stat().st_size, entries)

    def write(self, items: Sequence[tuple[str, bytes]]) -> None:
        """One durable pack holding `items` [(sha256, bytes)], then its index rows. Blobs the
        index already holds in a sound pack are left out."""
        sound = self.sizes(list(dict.fromkeys(sha for sha, _ in items)))
        entries: list[tuple[str, int, int]] = []
        chunks: list[bytes | memoryview] = []
        offset = 0
        for sha, data in items:
            if sha in sound:
                continue
            sound[sha] = len(data)
            entries.append((sha, offset, len(data)))
            chunks.append(data)
            offset += len(data)
        if not entries:
            return
        chunks.append(encode_trailer(entries, offset))
        name = f"{time.time_ns():x}-{secrets.token_hex(6)}{PACK_SUFFIX}"
        data = b"".join(chunks)
        atomic_write(self.dir / name, data, mode=0o644, tmp=self.tmp_dir / f"{TMP_PREFIX}{name}")
        size = len(data)
        self.index.add_pack(name, size, entries)

    def _sound(self, shas: Sequence[str]) -> dict[str, Location]:
        """Locations of the shas whose pack exists with the size it was recorded with."""
        index = self._index_if_any()
        if index is None:
            return {}
        found = index.lookup(shas)
        packs = {(loc.pack, recorded) for loc, recorded in found.values()}
        sound = {pack for pack, recorded in packs if self._pack_ok(pack, recorded)}
        return {sha: loc for sha, (loc, _) in found.items() if loc.pack in sound}

    def sizes(self, shas: Sequence[str]) -> dict[str, int]:
        """Sizes of the packed blobs among `shas` whose pack is sound (absent ones are left
        out): one query and one stat per pack, instead of a stat per blob."""
        index = self._index_if_any()
        if index is None:
            return {}
        rows = index.sized(shas)
        sound = {
            pack for pack, recorded in {(r[1], r[3]) for r in rows} if self._pack_ok(pack, recorded)
        }
        return {sha: size for sha, pack, size, _ in rows if pack in sound}

    def _pack_ok(self, pack: str, recorded: int) -> bool:
        try:
            actual: int | None = (self.dir / pack).stat().st_size
        except FileNotFoundError:
            actual = None
        if actual != recorded:
            log.error("blob pack %s is damaged: its blobs are absent", pack)
        return actual == recorded

    def read(self, sha256: str) -> bytes | None:
        """The verified bytes of a packed blob, None if not packed; CorruptBlobError if its
        bytes do not hash to its name."""
        loc = self._sound([sha256]).get(sha256)
        if loc is None:
            return None
        with (self.dir / loc.pack).open("rb") as fh:
            fh.seek(loc.offset)
            data = fh.read(loc.size)
        if len(data) != loc.size or hashlib.sha256(data).hexdigest() != sha256:
            raise CorruptBlobError(f"packed blob {sha256} in {loc.pack} is damaged")
        return data
