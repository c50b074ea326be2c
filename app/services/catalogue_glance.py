"""The catalogue's first page read with the standard library's sqlite3, for the window's
first rows.

Why: at start-up, importing SQLAlchemy and the catalogue service costs ~0.4 s, far more than
the query; the window shows its first rows from here and builds the real CatalogueService
afterwards (for searching, sorting, paging and details). Read-only, no migrations: a catalogue
that does not exist yet, or whose table lacks a column, answers None and the caller uses the
service instead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.domain.states import Kind, State
from app.services.item_summary import ItemSummary

DB_FILE_NAME = "catalogue.sqlite3"  # app.store.db.DB_FILE_NAME (a test keeps them equal)

_COLUMNS = (
    "id, kind, title, format, record_count, file_count, total_size, state, license, "
    "parent_id, parent_registry_id, manifest_root, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class Glance:
    total: int
    items: list[ItemSummary]


def _when(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def first_page(data_dir: Path, limit: int) -> Glance | None:
    """How many items there are and the first `limit` by id; None when it cannot tell."""
    path = data_dir / DB_FILE_NAME
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        total = int(conn.execute("SELECT count(id) FROM items").fetchone()[0])
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM items ORDER BY id LIMIT ?",  # noqa: S608 - fixed columns
            (limit,),
        ).fetchall()
        items = [
            ItemSummary(
                int(r[0]),
                Kind(r[1]),
                str(r[2]),
                str(r[3]),
                r[4],
                int(r[5]),
                int(r[6]),
                State(r[7]),
                str(r[8]),
                r[9],
                r[10],
                str(r[11]),
                _when(r[12]),
                _when(r[13]),
            )
            for r in rows
        ]
    except (sqlite3.Error, ValueError, TypeError):
        return None  # an older or newer schema, a locked file: the service will know
    finally:
        conn.close()
    return Glance(total, items)
