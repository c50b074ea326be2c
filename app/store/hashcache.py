"""The catalogue's implementation of the manifest HashCache: hashes reused like a build cache."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.manifest.hashing import HashedFile
from app.manifest.scan import ScannedFile
from app.store.db import Database
from app.store.models import HashCacheEntry

_LOOKUP_BATCH = 500


class StoreHashCache:
    """Reuses a stored sha256 only when size, mtime_ns and inode are all unchanged."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def lookup(self, files: Sequence[ScannedFile]) -> dict[str, str]:
        wanted = {str(f.abs_path): f for f in files}
        found: dict[str, str] = {}
        keys = list(wanted)
        with self._db.session() as s:
            for i in range(0, len(keys), _LOOKUP_BATCH):
                rows = s.scalars(
                    select(HashCacheEntry).where(
                        HashCacheEntry.abs_path.in_(keys[i : i + _LOOKUP_BATCH])
                    )
                )
                for row in rows:
                    f = wanted[row.abs_path]
                    if (row.size, row.mtime_ns, row.inode) == (f.size, f.mtime_ns, f.inode):
                        found[row.abs_path] = row.sha256
        return found

    def store(self, entries: Sequence[HashedFile]) -> None:
        if not entries:
            return
        rows = [
            {
                "abs_path": str(e.scanned.abs_path),
                "size": e.scanned.size,
                "mtime_ns": e.scanned.mtime_ns,
                "inode": e.scanned.inode,
                "sha256": e.sha256,
            }
            for e in entries
        ]
        with self._db.session() as s:
            for i in range(0, len(rows), _LOOKUP_BATCH):
                stmt = sqlite_insert(HashCacheEntry).values(rows[i : i + _LOOKUP_BATCH])
                stmt = stmt.on_conflict_do_update(
                    index_elements=["abs_path"],
                    set_={
                        "size": stmt.excluded.size,
                        "mtime_ns": stmt.excluded.mtime_ns,
                        "inode": stmt.excluded.inode,
                        "sha256": stmt.excluded.sha256,
                    },
                )
                s.execute(stmt)
