"""Registry storage: SQLAlchemy 2.0 models (SQLite or PostgreSQL) and sessions."""
