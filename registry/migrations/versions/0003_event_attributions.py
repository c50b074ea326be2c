"""Attributions move onto their event row; PostgreSQL compares usage ids bytewise.

Both for ingestion speed (the target is 20,000 attributed events/s):
- `usage_events.attributions` holds an event's attributions as a JSON array of
  `[contributionId, weightPpm, method]`, in the order the operator sent them. Nothing reads
  attributions by contribution (series and summaries come from `usage_buckets`, money from the
  ledger), so a separate table only cost three more rows per event to write: a third of
  SQLite's insert work. The rows of the old `attributions` table are folded in here.
- On PostgreSQL the text keys of the usage tables get `COLLATE "C"`: ids are ASCII tokens whose
  byte order is the right order, and a cluster initialised with a libc locale (C.UTF-8,
  en_US.UTF-8, ...) otherwise compares every B-tree key with strcoll(). SQLite already
  compares bytes (BINARY).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, varchar length) of the text keys that ingestion inserts or looks up.
_PG_C_COLLATED = (
    ("usage_events", "event_id", 128),
    ("usage_events", "model_id", 64),
    ("ledger", "event_id", 128),
    ("ledger", "contribution_id", 40),
    ("ledger", "owner_fingerprint", 64),
    ("ledger", "model_id", 64),
    ("usage_buckets", "contribution_id", 40),
    ("usage_buckets", "model_id", 64),
    ("usage_buckets", "method", 16),
)

_SQLITE_FOLD = """
UPDATE usage_events SET attributions = (
    SELECT json_group_array(json(item)) FROM (
        SELECT json_array(a.contribution_id, a.weight_ppm, a.method) AS item
        FROM attributions a WHERE a.event_id = usage_events.event_id ORDER BY a.id
    )
)
WHERE EXISTS (SELECT 1 FROM attributions a WHERE a.event_id = usage_events.event_id)
"""

_PG_FOLD = """
UPDATE usage_events e SET attributions = folded.items
FROM (
    SELECT event_id,
           json_agg(json_build_array(contribution_id, weight_ppm, method) ORDER BY id)::text
               AS items
    FROM attributions GROUP BY event_id
) AS folded
WHERE folded.event_id = e.event_id
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column(
        "usage_events",
        sa.Column("attributions", sa.Text(), nullable=False, server_default="[]"),
    )
    op.execute(_SQLITE_FOLD if dialect == "sqlite" else _PG_FOLD)
    op.drop_table("attributions")
    if dialect == "postgresql":
        for table, column, length in _PG_C_COLLATED:
            op.execute(
                f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) COLLATE "C"'
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table, column, length in _PG_C_COLLATED:
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) "
                "COLLATE pg_catalog.default"
            )
    op.create_table(
        "attributions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("contribution_id", sa.String(length=40), nullable=False),
        sa.Column("weight_ppm", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.CheckConstraint("weight_ppm >= 0", name="ck_attributions_weight"),
        sa.CheckConstraint(
            "method IN ('influence', 'exact-match', 'retrieval')", name="ck_attributions_method"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    if dialect == "sqlite":
        op.execute(
            "INSERT INTO attributions (event_id, contribution_id, weight_ppm, method) "
            "SELECT e.event_id, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), "
            "json_extract(j.value, '$[2]') FROM usage_events e, json_each(e.attributions) j "
            "ORDER BY e.event_id, j.key"
        )
    else:
        op.execute(
            "INSERT INTO attributions (event_id, contribution_id, weight_ppm, method) "
            "SELECT e.event_id, j.value->>0, (j.value->>1)::bigint, j.value->>2 "
            "FROM usage_events e, json_array_elements(e.attributions::json) "
            "WITH ORDINALITY AS j(value, n) ORDER BY e.event_id, j.n"
        )
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("attributions")
