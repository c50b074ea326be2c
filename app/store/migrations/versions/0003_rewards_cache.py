"""usage and rewards cache

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_cursors",
        sa.Column("registry_url", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("registry_url", "owner", "stream"),
    )
    op.create_table(
        "reward_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registry_url", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("contribution_id", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("registry_url", "owner", "cursor", name="uq_reward_entries_cursor"),
    )
    op.create_index(
        "ix_reward_entries_contribution",
        "reward_entries",
        ["registry_url", "contribution_id"],
        unique=False,
    )
    op.create_table(
        "usage_days",
        sa.Column("registry_url", sa.Text(), nullable=False),
        sa.Column("contribution_id", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("share_ppm", sa.BigInteger(), nullable=False),
        sa.Column("reward_micro", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("registry_url", "contribution_id", "day", "model_id", "method"),
    )
    op.create_table(
        "registry_models",
        sa.Column("registry_url", sa.Text(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("registry_url", "id"),
    )


def downgrade() -> None:
    op.drop_table("registry_models")
    op.drop_table("usage_days")
    op.drop_index("ix_reward_entries_contribution", table_name="reward_entries")
    op.drop_table("reward_entries")
    op.drop_table("sync_cursors")
