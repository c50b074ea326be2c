"""Verified hash tiles of registries' transparency logs (app.store.tlog_models.LogTile): new
entries are verified against the tiles that hold them and store no audit path of their own.
Entries stored with their audit path before keep it (`log_proofs.proof`), and `audit` still
verifies them by it, so nothing stored has to be fetched again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_tiles",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("level", sa.Integer(), primary_key=True),
        sa.Column("idx", sa.BigInteger(), primary_key=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("log_tiles")
