"""The number of each owner's ledger entries with a verified inclusion (`log_proof_counts`),
kept by triggers on `log_proofs` (every row added or removed counts; an insert that keeps the
stored row adds nothing), filled from the stored proofs. A sync with nothing new and the log
status read it instead of counting the proofs.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A ledger entry's proof: not an acceptance proof (cursor "acceptance:<id>"), as
# app.services.transparency.acceptance files them.
_LEDGER = "({row}.cursor < 'acceptance:' OR {row}.cursor >= 'acceptance;')"


def upgrade() -> None:
    op.create_table(
        "log_proof_counts",
        sa.Column("registry_key", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), primary_key=True),
        sa.Column("ledger", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO log_proof_counts (registry_key, owner, ledger) "
        "SELECT registry_key, owner, count(*) FROM log_proofs "
        f"WHERE {_LEDGER.format(row='log_proofs')} GROUP BY registry_key, owner"
    )
    op.execute(
        "CREATE TRIGGER log_proofs_counted AFTER INSERT ON log_proofs "
        f"WHEN {_LEDGER.format(row='NEW')} BEGIN "
        "INSERT INTO log_proof_counts (registry_key, owner, ledger) "
        "VALUES (NEW.registry_key, NEW.owner, 1) "
        "ON CONFLICT (registry_key, owner) DO UPDATE SET ledger = ledger + 1; END"
    )
    op.execute(
        "CREATE TRIGGER log_proofs_uncounted AFTER DELETE ON log_proofs "
        f"WHEN {_LEDGER.format(row='OLD')} BEGIN "
        "UPDATE log_proof_counts SET ledger = ledger - 1 "
        "WHERE registry_key = OLD.registry_key AND owner = OLD.owner; END"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER log_proofs_uncounted")
    op.execute("DROP TRIGGER log_proofs_counted")
    op.drop_table("log_proof_counts")
