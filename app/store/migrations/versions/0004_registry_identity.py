"""rewards keyed by registry identity, not URL

The rewards cache (sync cursors, ledger entries, usage days, model names) was keyed by the
registry's URL, so the same registry at a new address (the demo registry on a new port)
looked like a new, empty one. The `registry_url` columns become `registry_key`, holding a
registry key: the identity the registry names itself by, or `url:<URL>` until it has. Rows
already stored get `url:<their URL>`; the next contact with the registry at that URL re-keys
them to its identity (app.services.registry_identity), and they are shown meanwhile.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("sync_cursors", "reward_entries", "usage_days", "registry_models")


def upgrade() -> None:
    op.create_table(
        "known_registries",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "registry_addresses",
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("registry_key", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url"),
    )
    op.create_index("ix_registry_addresses_registry_key", "registry_addresses", ["registry_key"])
    # SQLite >= 3.25 renames a column in place, constraints and indexes included.
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RENAME COLUMN registry_url TO registry_key")
        op.execute(f"UPDATE {table} SET registry_key = 'url:' || rtrim(registry_key, '/')")
    # Every URL rewards were synced from is a known address, identity not learned yet.
    op.execute(
        "INSERT OR IGNORE INTO registry_addresses (url, registry_key, seen_at) "
        "SELECT substr(registry_key, 5), registry_key, max(synced_at) FROM sync_cursors "
        "GROUP BY registry_key"
    )


def downgrade() -> None:
    # Back to URLs: an identity becomes the address it was last seen at.
    for table in _TABLES:
        op.execute(
            f"UPDATE {table} SET registry_key = coalesce("
            "(SELECT a.url FROM registry_addresses a WHERE a.registry_key = "
            f"{table}.registry_key ORDER BY a.seen_at DESC LIMIT 1), "
            f"CASE WHEN {table}.registry_key LIKE 'url:%' THEN substr({table}.registry_key, 5) "
            f"ELSE {table}.registry_key END)"
        )
        op.execute(f"ALTER TABLE {table} RENAME COLUMN registry_key TO registry_url")
    op.drop_index("ix_registry_addresses_registry_key", table_name="registry_addresses")
    op.drop_table("registry_addresses")
    op.drop_table("known_registries")
