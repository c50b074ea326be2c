"""A catalogue database file in a test of its migrations: taken to a revision, read and written
with plain sqlite3 (the rows as the migration left them, no ORM in between)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine

from app.store.db import DB_FILE_NAME, Database, _alembic_config


def at_revision(folder: Path, revision: str) -> Path:
    """The catalogue in `folder` (made at head if there is none) downgraded to `revision`;
    its file. Opening it with `Database` again upgrades it to head."""
    db = Database(folder)
    try:
        command.downgrade(_alembic_config(db.engine), revision)
    finally:
        db.dispose()
    return folder / DB_FILE_NAME


def upgraded(folder: Path, revision: str) -> Path:
    """The catalogue in `folder` upgraded to `revision` (not further); its file."""
    engine = create_engine(f"sqlite:///{folder / DB_FILE_NAME}")
    try:
        command.upgrade(_alembic_config(engine), revision)
    finally:
        engine.dispose()
    return folder / DB_FILE_NAME


def rows(path: Path, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def write(path: Path, sql: str, *params: Any) -> int:
    """`sql` once per parameter tuple (once without any), in one transaction; rows changed."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            return conn.executemany(sql, params or [()]).rowcount
    finally:
        conn.close()
