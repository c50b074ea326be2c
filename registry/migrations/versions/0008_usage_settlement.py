"""Usage intake appends to a log, settlement writes the ledger (registry.settlement).

`usage_events.seq` is the position of an event in the append-only usage log (unique,
increasing in commit order); `settlement_state` holds the settled watermark; ledger entries
get the aggregate columns (events, digest, usage-log range) and `settlement_drops` records the
attributions that were valid at intake but not at settlement.

Events stored before this revision were settled synchronously: they get sequence numbers in
the order they were received and the watermark starts after the last of them, so nothing is
settled twice. New columns are added with plain ADD COLUMN (no table copy), so the ledger's
append-only triggers stay in place.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage_events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE usage_events SET seq = r.n FROM (SELECT event_id AS eid, row_number() OVER "
        "(ORDER BY received_at, event_id) AS n FROM usage_events) AS r "
        "WHERE usage_events.event_id = r.eid"
    )
    op.create_index("ux_usage_events_seq", "usage_events", ["seq"], unique=True)
    for name in ("events", "seq_from", "seq_to"):
        op.add_column("ledger", sa.Column(name, sa.BigInteger(), nullable=True))
    op.add_column("ledger", sa.Column("digest", sa.String(64), nullable=True))
    op.add_column("ledger", sa.Column("share_ppm", sa.Integer(), nullable=True))
    state = op.create_table(
        "settlement_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("settled_seq", sa.BigInteger(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(state, [{"id": 1, "settled_seq": 0, "settled_at": None}])
    op.execute(
        "UPDATE settlement_state SET settled_seq = "
        "(SELECT coalesce(max(seq), 0) FROM usage_events) WHERE id = 1"
    )
    op.create_table(
        "settlement_drops",
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("contribution_id", sa.String(40), primary_key=True),
        sa.Column("method", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settlement_drops")
    op.drop_table("settlement_state")
    for name in ("share_ppm", "digest", "seq_to", "seq_from", "events"):
        op.drop_column("ledger", name)
    op.drop_index("ux_usage_events_seq", table_name="usage_events")
    op.drop_column("usage_events", "seq")
