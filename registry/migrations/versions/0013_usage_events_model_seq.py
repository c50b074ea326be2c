"""An index on usage_events (model_id, seq, at): an aggregated ledger entry's events.

GET /v1/me/rewards/{entryId}/events lists the events of one model and one day inside the entry's
settlement chunk (the usage-log range seq_from < seq <= seq_to). With this index the chunk's
events of that model are one range of the index, and the day is checked in the index too: only
the events of that model and day read their rows (registry.settlement.entry_events). Without it
the range on ux_usage_events_seq reads the row of every event of the chunk, of every model.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_usage_events_model_seq", "usage_events", ["model_id", "seq", "at"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_model_seq", table_name="usage_events")
