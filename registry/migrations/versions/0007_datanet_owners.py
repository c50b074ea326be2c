"""Datanets get an owner and a rules version; contributions keep the rules they were judged by,
the tables their contributor declared, and the owner's review decision.

Existing datanets have no owner (an operator edits them with `contributor-registry datanet
update`) and start at rules version 1, the version a statement without `rulesVersion` means.
Existing contributions keep NULL rules (judged by the datanet's current rules, as before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datanets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_fingerprint", sa.String(64), nullable=True))
        batch_op.add_column(
            sa.Column("rules_version", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_datanets_owner_fingerprint", ["owner_fingerprint"])
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rules", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tables", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("review_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_contributions_datanet_state", ["datanet", "state"])


def downgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index("ix_contributions_datanet_state")
        for name in ("reviewed_at", "review_note", "tables", "rules", "rules_version"):
            batch_op.drop_column(name)
    with op.batch_alter_table("datanets", schema=None) as batch_op:
        batch_op.drop_index("ix_datanets_owner_fingerprint")
        for name in ("updated_at", "rules_version", "owner_fingerprint"):
            batch_op.drop_column(name)
