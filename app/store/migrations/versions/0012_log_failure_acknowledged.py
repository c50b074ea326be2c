"""When the user acknowledged a recorded log failure (`log_failures.acknowledged_at`): the
failure and its evidence are kept, but it no longer fails `audit` or shows on the Rewards page.
Failures recorded before stay unacknowledged.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("log_failures") as batch:
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_failures") as batch:
        batch.drop_column("acknowledged_at")
