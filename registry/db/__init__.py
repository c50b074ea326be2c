"""Registry storage: SQLAlchemy 2.0 models (SQLite or PostgreSQL) and sessions.

Both model modules are imported by the migration environment so Base.metadata is complete.
"""
