"""Verified hash tiles of registries' transparency logs (app.store.tlog_models.LogTile): new
entries are verified against the tiles that hold them and store no audit path of their own.
Entries stored with their audit path before keep it (`log_proofs.proof`), and `audit` still
verifies them by it, so nothing stored has to be fetched again. The events count of every
verified entry's leaf (`log_leaf_events`), filed by contribution and day, filled from the
stored leaves.

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

    op.create_table(
        "log_leaf_events",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("contribution_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("method", sa.String(16), primary_key=True),
        sa.Column("cursor", sa.String(64), primary_key=True),
        sa.Column("settlement", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT OR IGNORE INTO log_leaf_events SELECT r.registry_key, r.owner, "
        "r.contribution_id, date(r.at), r.model_id, r.method, r.cursor, "
        "CASE WHEN r.event_id GLOB 's[0-9]*' AND substr(r.event_id, 2) NOT GLOB '*[^0-9]*' "
        "THEN CAST(substr(r.event_id, 2) AS INTEGER) ELSE 0 END, "
        "json_extract(CAST(p.leaf AS TEXT), '$.events') "
        "FROM log_proofs p JOIN reward_entries r ON r.registry_key = p.registry_key "
        "AND r.owner = p.owner AND r.cursor = p.cursor "
        "WHERE json_extract(CAST(p.leaf AS TEXT), '$.events') IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("log_leaf_events")
    op.drop_table("log_tiles")
