"""The ledger rollup per day (`ledger_rollup_days`, one row per contribution, day, model and
method: as many rows as a contributor has ledger cells) names its registry key and owner by
their ledger scope id, like the entries since revision 0014: its rows were ~290 bytes, two
thirds of them the two strings. Rows are copied as they are; a downgrade puts the strings back.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "contribution_id, day, model_id, method, amount_micro, entries"
_AMOUNT = "BIGINT DEFAULT '0' NOT NULL"
_REST = (
    "\n\tcontribution_id VARCHAR(128) NOT NULL, \n\tday DATE NOT NULL, "
    "\n\tmodel_id VARCHAR(64) NOT NULL, \n\tmethod VARCHAR(16) NOT NULL, "
    f"\n\tamount_micro {_AMOUNT}, \n\tentries {_AMOUNT}, "
)


def _rebuild(scoped: bool) -> None:
    if scoped:
        key, pk, value = "scope INTEGER NOT NULL, ", "scope", "sc.id"
        join = "sc.registry_key = t.registry_key AND sc.owner = t.owner"
    else:
        key = "registry_key TEXT NOT NULL, \n\towner VARCHAR(64) NOT NULL, "
        pk, value, join = "registry_key, owner", "sc.registry_key, sc.owner", "sc.id = t.scope"
    op.execute(
        f"CREATE TABLE _new_ledger_rollup_days (\n\t{key}{_REST}"
        f"\n\tPRIMARY KEY ({pk}, contribution_id, day, model_id, method)\n) WITHOUT ROWID"
    )
    picked = ", ".join(f"t.{c}" for c in _COLUMNS.split(", "))
    op.execute(
        f"INSERT INTO _new_ledger_rollup_days ({pk}, {_COLUMNS}) "
        f"SELECT {value}, {picked} FROM ledger_rollup_days AS t "
        f"JOIN ledger_scopes AS sc ON {join}"
    )
    op.execute("DROP TABLE ledger_rollup_days")
    op.execute("ALTER TABLE _new_ledger_rollup_days RENAME TO ledger_rollup_days")


def upgrade() -> None:
    # a rollup's key and owner without entries (none in practice) gets its scope too
    op.execute(
        "INSERT INTO ledger_scopes (registry_key, owner) "
        "SELECT DISTINCT registry_key, owner FROM ledger_rollup_days WHERE true "
        "ON CONFLICT (registry_key, owner) DO NOTHING"
    )
    _rebuild(scoped=True)


def downgrade() -> None:
    _rebuild(scoped=False)
