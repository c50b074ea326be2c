"""Attribution evidence: the events behind ledger entries with their evidence and its check
against the local files (app.store.evidence_models).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evidence_fetch",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.String(64), primary_key=True),
        sa.Column("after_seq", sa.BigInteger(), nullable=True),
        sa.Column("fetched", sa.BigInteger(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "evidence_events",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.BigInteger(), primary_key=True),
        sa.Column("contribution_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fee_micro", sa.BigInteger(), nullable=False),
        sa.Column("weight_ppm", sa.BigInteger(), nullable=False),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("attributions_json", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=True),
        sa.Column("span_sha256", sa.String(64), nullable=True),
        sa.Column("excerpt", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_evidence_events_contribution",
        "evidence_events",
        ["registry_key", "owner", "contribution_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_evidence_events_contribution", table_name="evidence_events")
    op.drop_table("evidence_events")
    op.drop_table("evidence_fetch")
