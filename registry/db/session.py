"""Engines, sessions and migrations for the registry database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from registry.db.checkpointer import attach_checkpointer

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


def make_engine(db_url: str) -> Engine:
    """An engine for `db_url`; SQLite gets WAL + foreign keys, PostgreSQL a pre-pinged pool."""
    if db_url.startswith("sqlite"):
        path = db_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            db_url,
            connect_args={"check_same_thread": False, "timeout": 15},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        if path and path != ":memory:":
            attach_checkpointer(engine, path)
        return engine
    return create_engine(db_url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; called at serve start)."""
    command.upgrade(alembic_config(engine), "head")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, from the app's sessionmaker.

    Routes commit explicitly; anything left uncommitted is rolled back on close.
    """
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]
"""Type for route parameters: `session: DbSession` (avoids Depends() in defaults, ruff B008)."""
