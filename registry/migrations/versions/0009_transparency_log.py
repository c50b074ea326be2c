"""The transparency log (registry.translog): leaves, hash tiles, signed checkpoints.

`log_leaves` holds every leaf in log order (a ledger entry or a contribution acceptance, as
canonical JSON) with what it stands for (`kind`, `ref`): entry bundles are read from it.
`log_tiles` holds the hash tiles, each growing in place (a partial tile of width W is the
first W hashes of the stored one). `log_checkpoints` keeps every signed checkpoint, by tree
size. `log_state` is one row: the tree size and the highest ledger id logged; appenders lock
it first, so leaves are appended one transaction at a time. The log's signing key is made at
the first append and kept in `registry_meta` (keys `log_origin`, `log_skey`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_leaves",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(128), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ux_log_leaves_ref", "log_leaves", ["kind", "ref"], unique=True)
    op.create_table(
        "log_tiles",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    state = op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("ledger_id", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "size": 0, "ledger_id": 0}])


def downgrade() -> None:
    op.drop_table("log_state")
    op.drop_table("log_checkpoints")
    op.drop_table("log_tiles")
    op.drop_index("ux_log_leaves_ref", table_name="log_leaves")
    op.drop_table("log_leaves")
