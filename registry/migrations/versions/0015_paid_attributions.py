"""The attributions each settlement chunk paid: per contribution and method, their positions.

GET /v1/me/rewards/{entryId}/events lists the events of one contributor entry: one
contribution, model, method and day inside the entry's settlement chunk. From the usage log
alone that is a range read of every event of the chunk's model and day (thousands of rows
for an entry of a few events, ~40 ms each). The settler now writes, per contribution and
method it paid in a chunk, one row with the usage-log positions of those events
(registry.db.usage_models.PaidAttribution), and an entry's events are read at those
positions. The table starts empty: entries settled before this revision have no row and are
listed from the usage log as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(length: int) -> sa.String:
    """An id column compared bytewise on PostgreSQL (as migration 0003 made the others)."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "paid_attributions",
        sa.Column("contribution_id", _key(40), nullable=False),
        sa.Column("method", _key(16), nullable=False),
        sa.Column("chunk", sa.BigInteger(), nullable=False),
        sa.Column("positions", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("contribution_id", "method", "chunk"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("paid_attributions")
