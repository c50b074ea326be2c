"""Has an item's folder changed since it was catalogued? The check submit and the datanet
rules make before anything is signed or sent."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import FileEntry

SHOWN = 10


class CatalogFile(NamedTuple):
    """The catalogued facts about one file that the re-check compares with the disk."""

    id: int
    path: str
    size: int
    sha256: str
    mtime_ns: int


def check_files(root: str, files: Iterable[CatalogFile]) -> tuple[list[str], dict[int, int]]:
    """What changed since the item was added: missing or different files (size+mtime fast
    path, sha256 only when the fast path says 'maybe'). Also returns {file id: new mtime_ns}
    for files that were only touched (same bytes), so the caller can keep the fast path fast.
    """
    changed: list[str] = []
    touched: dict[int, int] = {}
    for f in files:
        path = os.path.join(root, f.path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            changed.append(f"{f.path} (missing)")
            continue
        except OSError as exc:
            changed.append(f"{f.path} (cannot be read: {exc.strerror})")
            continue
        if st.st_size != f.size:
            changed.append(f"{f.path} (size {f.size} → {st.st_size})")
        elif st.st_mtime_ns != f.mtime_ns:
            if _sha256(path) != f.sha256:
                changed.append(f"{f.path} (content changed)")
            else:
                touched[f.id] = st.st_mtime_ns
    return changed, touched


def catalogued_files(s: Session, item_id: int) -> list[CatalogFile]:
    """Core rows, not ORM objects: a contribution can have 10,000s of files."""
    return [
        CatalogFile(*row)
        for row in s.execute(
            select(
                FileEntry.id, FileEntry.path, FileEntry.size, FileEntry.sha256, FileEntry.mtime_ns
            ).where(FileEntry.item_id == item_id)
        )
    ]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def changed_message(item_id: int, changed: list[str]) -> str:
    more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
    return f"item #{item_id} changed since it was added: {'; '.join(changed[:SHOWN])}{more}"
