"""Alembic environment: runs on the engine handed over by app.store.db.Database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from app.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only via Database
    raise RuntimeError("run migrations through app.store.db.Database")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables
    )
    with context.begin_transaction():
        context.run_migrations()
