"""Plain dataclasses and rules. No Qt, no SQLAlchemy, no I/O."""
