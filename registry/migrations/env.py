"""Alembic environment: runs on the engine handed over by registry.db.session.migrate()."""

from __future__ import annotations

import importlib
import importlib.util

from alembic import context
from sqlalchemy import Engine

import registry.db.models  # noqa: F401  (registers the core tables on Base.metadata)
from registry.db.base import Base

# registry-usage's tables (models, usage, ledger) live in their own module on the same Base.
if importlib.util.find_spec("registry.db.usage_models") is not None:
    importlib.import_module("registry.db.usage_models")

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only via migrate()
    raise RuntimeError("run migrations through registry.db.session.migrate()")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
