"""Rollups of the synced rewards copy (app.store.rollups): ledger entries per day and in
total per contribution × model × method, usage per day × model × method and per contribution ×
day for each identity's synced contributions; filled from the rows already stored.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The rollups recomputed from the rows, as app.store.rollups.rebuild_statements(one_key=False)
# wrote them when this revision was made (kept here: a migration must not change later).
BACKFILL = (
    """INSERT INTO ledger_rollup_days (registry_key, owner, contribution_id, day, model_id,
         method, amount_micro, entries)
       SELECT registry_key, owner, contribution_id, substr(at, 1, 10), model_id, method,
              sum(amount_micro), count(*)
       FROM reward_entries
       GROUP BY registry_key, owner, contribution_id, substr(at, 1, 10), model_id, method""",
    """INSERT INTO ledger_rollup_totals (registry_key, owner, contribution_id, model_id,
         method, amount_micro, entries)
       SELECT registry_key, owner, contribution_id, model_id, method, sum(amount_micro),
              sum(entries)
       FROM ledger_rollup_days
       GROUP BY registry_key, owner, contribution_id, model_id, method""",
    """INSERT INTO usage_rollup_days (registry_key, owner, day, model_id, method, rows, events,
         share_ppm, reward_micro)
       SELECT c.registry_key, c.owner, u.day, u.model_id, u.method, count(*), sum(u.events),
              sum(u.share_ppm), sum(u.reward_micro)
       FROM sync_cursors AS c CROSS JOIN usage_days AS u
         ON u.registry_key = c.registry_key AND u.contribution_id = substr(c.stream, 7)
       WHERE substr(c.stream, 1, 6) = 'usage:'
       GROUP BY c.registry_key, c.owner, u.day, u.model_id, u.method""",
    """INSERT INTO usage_rollup_contributions (registry_key, owner, contribution_id, day, rows,
         events, share_ppm, reward_micro)
       SELECT c.registry_key, c.owner, u.contribution_id, u.day, count(*), sum(u.events),
              sum(u.share_ppm), sum(u.reward_micro)
       FROM sync_cursors AS c CROSS JOIN usage_days AS u
         ON u.registry_key = c.registry_key AND u.contribution_id = substr(c.stream, 7)
       WHERE substr(c.stream, 1, 6) = 'usage:'
       GROUP BY c.registry_key, c.owner, u.contribution_id, u.day""",
)


def _amounts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(n, sa.BigInteger(), nullable=False, server_default="0") for n in names]


def upgrade() -> None:
    op.create_table(
        "ledger_rollup_days",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("contribution_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("method", sa.String(16), primary_key=True),
        *_amounts("amount_micro", "entries"),
    )
    op.create_table(
        "ledger_rollup_totals",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("contribution_id", sa.String(128), primary_key=True),
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("method", sa.String(16), primary_key=True),
        *_amounts("amount_micro", "entries"),
    )
    op.create_table(
        "usage_rollup_days",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("method", sa.String(16), primary_key=True),
        *_amounts("rows", "events", "share_ppm", "reward_micro"),
    )
    op.create_table(
        "usage_rollup_contributions",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("contribution_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        *_amounts("rows", "events", "share_ppm", "reward_micro"),
    )
    for sql in BACKFILL:
        op.execute(sql)


def downgrade() -> None:
    for table in (
        "usage_rollup_contributions",
        "usage_rollup_days",
        "ledger_rollup_totals",
        "ledger_rollup_days",
    ):
        op.drop_table(table)
