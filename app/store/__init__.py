"""SQLAlchemy 2.0 models and Alembic migrations for the local catalogue (SQLite, WAL)."""
