"""Usage ingestion and rewards: models, usage events, attributions, append-only ledger, buckets.

Shaped for ingestion speed (every index and check costs per row, ~8 rows per event):
- usage_events and usage_buckets are keyed by their natural key WITHOUT ROWID on SQLite, so
  each row is one B-tree insert instead of a table insert plus a unique-index insert;
- no foreign keys from events/attributions/ledger: ingestion checks models and contributions
  in the same transaction, and neither is ever deleted; a per-row FK probe cost SQLite ~1/6
  and PostgreSQL ~1/3 of the ingestion time;
- the ledger's `id` is a plain rowid (no AUTOINCREMENT bookkeeping per row): rows are never
  deleted (trigger), so max(id) + 1 keeps ids increasing;
- the owner index is partial (contributor entries only), the only rows read by owner;
- protocol entries are one per model and batch (event_id NULL), not one per event.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the rewards ledger is append-only';
END;
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("operator_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["operator_fingerprint"], ["keys.fingerprint"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "usage_events",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fee_micro", sa.BigInteger(), nullable=False),
        sa.Column("operator_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("fee_micro >= 0", name="ck_usage_events_fee"),
        sa.PrimaryKeyConstraint("event_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "attributions",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
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
    op.create_table(
        "ledger",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contribution_id", sa.String(length=40), nullable=True),
        sa.Column("owner_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.CheckConstraint("amount_micro >= 0", name="ck_ledger_amount"),
        sa.CheckConstraint("kind IN ('contributor', 'protocol')", name="ck_ledger_kind"),
        sa.CheckConstraint(
            "kind = 'protocol' OR event_id IS NOT NULL", name="ck_ledger_contributor_event"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    # Only contributor entries are read by owner; protocol entries cost no index maintenance.
    op.create_index(
        "ix_ledger_owner_id",
        "ledger",
        ["owner_fingerprint", "id"],
        unique=False,
        sqlite_where=sa.text("kind = 'contributor'"),
        postgresql_where=sa.text("kind = 'contributor'"),
    )
    op.create_table(
        "usage_buckets",
        sa.Column("contribution_id", sa.String(length=40), nullable=False),
        sa.Column("bucket_start", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("share_ppm_sum", sa.BigInteger(), nullable=False),
        sa.Column("reward_micro", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("contribution_id", "bucket_start", "model_id", "method"),
        sqlite_with_rowid=False,
    )

    # Append-only ledger, enforced by the database itself, not only by the code.
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_no_{action.lower()} BEFORE {action} ON ledger "
                "BEGIN SELECT RAISE(ABORT, 'the rewards ledger is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(_PG_APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_append_only ON ledger")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    op.drop_table("usage_buckets")
    op.drop_index("ix_ledger_owner_id", table_name="ledger")
    op.drop_table("ledger")
    op.drop_table("attributions")
    op.drop_table("usage_events")
    op.drop_table("models")
