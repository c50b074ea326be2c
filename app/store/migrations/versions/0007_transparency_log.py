"""Transparency-log verification state: pinned log keys, verified checkpoints and inclusion
proofs, recorded failures with their evidence (app.store.tlog_models).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_pins",
        sa.Column("origin", sa.Text(), primary_key=True),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("size", sa.BigInteger(), primary_key=True),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("prev_size", sa.BigInteger(), nullable=True),
        sa.Column("consistency", sa.LargeBinary(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "log_proofs",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), primary_key=True),
        sa.Column("cursor", sa.Text(), primary_key=True),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("proof", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "log_failures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("registry_key", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
    )
    op.create_index("ix_log_failures_registry_key", "log_failures", ["registry_key"])


def downgrade() -> None:
    op.drop_index("ix_log_failures_registry_key", table_name="log_failures")
    op.drop_table("log_failures")
    op.drop_table("log_proofs")
    op.drop_table("log_checkpoints")
    op.drop_table("log_pins")
