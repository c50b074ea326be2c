"""The registry's identity: a random id made once per database, named in GET /v1/health.

Clients key their local copy of a registry's data (ledger entries, usage days) to this id
rather than to the URL they reached it at, so the same registry at a new address (the demo
registry on a new port, a moved host) is still the same registry. `registry_meta` is a small
key/value table; the id is written here, at the first migration of the database, and never
changes afterwards.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-05
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    meta = op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "registry_id", "value": "reg_" + secrets.token_hex(16)}])


def downgrade() -> None:
    op.drop_table("registry_meta")
