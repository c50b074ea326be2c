"""The persistent hash cache: a stored sha256 is reused only while size, mtime and inode match."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.manifest.hashing import HashedFile, hash_files
from app.manifest.scan import ScannedFile, scan_paths
from app.store.db import Database
from app.store.hashcache import StoreHashCache


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "data")
    try:
        yield database
    finally:
        database.dispose()


def _scanned(path: Path, root: Path) -> ScannedFile:
    st = path.stat()
    return ScannedFile(
        path, path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns, st.st_ino
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_hashes_survive_a_new_database_connection(tmp_path: Path, db: Database) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"a,b\n1,2\n")
    f = _scanned(folder / "a.csv", folder)
    StoreHashCache(db).store([HashedFile(f, _sha(b"a,b\n1,2\n"))])
    db.dispose()

    reopened = Database(tmp_path / "data")  # what a restart of the app sees
    try:
        assert StoreHashCache(reopened).lookup([f]) == {str(f.abs_path): _sha(b"a,b\n1,2\n")}
    finally:
        reopened.dispose()


@pytest.mark.parametrize(
    "change",
    [{"size": 1}, {"mtime_ns": 1}, {"inode": 1}],
    ids=["size", "mtime", "inode"],
)
def test_any_changed_stat_field_is_a_miss(
    tmp_path: Path, db: Database, change: dict[str, int]
) -> None:
    (tmp_path / "x.bin").write_bytes(b"x" * 10)
    f = _scanned(tmp_path / "x.bin", tmp_path)
    cache = StoreHashCache(db)
    cache.store([HashedFile(f, "0" * 64)])
    field, delta = next(iter(change.items()))
    moved = replace(f, **{field: getattr(f, field) + delta})
    assert cache.lookup([moved]) == {}
    assert cache.lookup([f]) == {str(f.abs_path): "0" * 64}


def test_storing_again_replaces_the_entry(tmp_path: Path, db: Database) -> None:
    (tmp_path / "x.bin").write_bytes(b"old")
    old = _scanned(tmp_path / "x.bin", tmp_path)
    cache = StoreHashCache(db)
    cache.store([HashedFile(old, _sha(b"old"))])
    (tmp_path / "x.bin").write_bytes(b"newer")
    os.utime(tmp_path / "x.bin", ns=(old.mtime_ns + 10**9, old.mtime_ns + 10**9))
    new = _scanned(tmp_path / "x.bin", tmp_path)
    cache.store([HashedFile(new, _sha(b"newer"))])
    assert cache.lookup([new]) == {str(new.abs_path): _sha(b"newer")}
    assert cache.lookup([old]) == {}  # one row per path: the old stat no longer matches
    cache.store([])  # nothing to do, no error


def test_lookups_and_stores_beyond_one_batch(tmp_path: Path, db: Database) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    files = []
    for i in range(1203):  # more than two batches of 500
        p = folder / f"f{i:04d}.txt"
        p.write_bytes(str(i).encode())
        files.append(_scanned(p, folder))
    cache = StoreHashCache(db)
    cache.store([HashedFile(f, _sha(str(i).encode())) for i, f in enumerate(files)])
    found = cache.lookup(files)
    assert len(found) == 1203
    assert found[str(files[1202].abs_path)] == _sha(b"1202")


def test_hash_files_reads_unchanged_files_from_the_store(tmp_path: Path, db: Database) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"1,2\n")
    (folder / "b.csv").write_bytes(b"3,4\n")
    scan = scan_paths([folder])
    first = hash_files(scan.files, cache=StoreHashCache(db))
    assert {e.scanned.rel_path: e.sha256 for e in first.entries} == {
        "a.csv": _sha(b"1,2\n"),
        "b.csv": _sha(b"3,4\n"),
    }
    # Same size, same mtime, same inode: the cache is trusted and the file is not read again.
    # (Rewriting in place keeps the inode; restoring the mtime hides the change, which is
    # exactly the trade-off a build cache makes.)
    a = folder / "a.csv"
    st = a.stat()
    with a.open("r+b") as fh:
        fh.write(b"9,9\n")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = hash_files(scan_paths([folder]).files, cache=StoreHashCache(db))
    assert {e.scanned.rel_path: e.sha256 for e in again.entries}["a.csv"] == _sha(b"1,2\n")
    # A real edit (new mtime) is hashed afresh and the store learns the new hash.
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    fresh = hash_files(scan_paths([folder]).files, cache=StoreHashCache(db))
    assert {e.scanned.rel_path: e.sha256 for e in fresh.entries}["a.csv"] == _sha(b"9,9\n")
    rescanned = [f for f in scan_paths([folder]).files if f.rel_path == "a.csv"]
    assert StoreHashCache(db).lookup(rescanned) == {str(a): _sha(b"9,9\n")}
