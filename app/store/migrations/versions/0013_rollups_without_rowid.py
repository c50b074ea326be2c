"""The usage days and the four rollup tables stored WITHOUT ROWID: each row lives once, in
its primary key's b-tree, instead of in the table and again in the key's index. Their rows are
small and always found by a prefix of the key (a contribution's days, an owner's rollups), so
a read walks one b-tree and a sync's inserts and upserts write one. Rows are copied as they are.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AMOUNT = "BIGINT DEFAULT '0' NOT NULL"
# Each table's columns (as revisions 0003/0004 and 0009 made them) and its primary key.
TABLES: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "usage_days": (
        (("registry_key", "TEXT NOT NULL"), ("contribution_id", "VARCHAR(128) NOT NULL"),
         ("day", "DATE NOT NULL"), ("model_id", "VARCHAR(64) NOT NULL"),
         ("method", "VARCHAR(16) NOT NULL"), ("events", "BIGINT NOT NULL"),
         ("share_ppm", "BIGINT NOT NULL"), ("reward_micro", "BIGINT NOT NULL")),
        ("registry_key", "contribution_id", "day", "model_id", "method"),
    ),
    "ledger_rollup_days": (
        (("registry_key", "TEXT NOT NULL"), ("owner", "VARCHAR(64) NOT NULL"),
         ("contribution_id", "VARCHAR(128) NOT NULL"), ("day", "DATE NOT NULL"),
         ("model_id", "VARCHAR(64) NOT NULL"), ("method", "VARCHAR(16) NOT NULL"),
         ("amount_micro", _AMOUNT), ("entries", _AMOUNT)),
        ("registry_key", "owner", "contribution_id", "day", "model_id", "method"),
    ),
    "ledger_rollup_totals": (
        (("registry_key", "TEXT NOT NULL"), ("owner", "VARCHAR(64) NOT NULL"),
         ("contribution_id", "VARCHAR(128) NOT NULL"), ("model_id", "VARCHAR(64) NOT NULL"),
         ("method", "VARCHAR(16) NOT NULL"), ("amount_micro", _AMOUNT), ("entries", _AMOUNT)),
        ("registry_key", "owner", "contribution_id", "model_id", "method"),
    ),
    "usage_rollup_days": (
        (("registry_key", "TEXT NOT NULL"), ("owner", "VARCHAR(64) NOT NULL"),
         ("day", "DATE NOT NULL"), ("model_id", "VARCHAR(64) NOT NULL"),
         ("method", "VARCHAR(16) NOT NULL"), ("rows", _AMOUNT), ("events", _AMOUNT),
         ("share_ppm", _AMOUNT), ("reward_micro", _AMOUNT)),
        ("registry_key", "owner", "day", "model_id", "method"),
    ),
    "usage_rollup_contributions": (
        (("registry_key", "TEXT NOT NULL"), ("owner", "VARCHAR(64) NOT NULL"),
         ("contribution_id", "VARCHAR(128) NOT NULL"), ("day", "DATE NOT NULL"),
         ("rows", _AMOUNT), ("events", _AMOUNT), ("share_ppm", _AMOUNT),
         ("reward_micro", _AMOUNT)),
        ("registry_key", "owner", "contribution_id", "day"),
    ),
}  # fmt: skip


def _rebuild(name: str, *, without_rowid: bool) -> None:
    columns, key = TABLES[name]
    names = ", ".join(c for c, _t in columns)
    defs = ",\n\t".join(f"{c} {t}" for c, t in columns)
    op.execute(
        f"CREATE TABLE _new_{name} (\n\t{defs},\n\tPRIMARY KEY ({', '.join(key)})\n)"
        + (" WITHOUT ROWID" if without_rowid else "")
    )
    op.execute(f"INSERT INTO _new_{name} ({names}) SELECT {names} FROM {name}")
    op.execute(f"DROP TABLE {name}")
    op.execute(f"ALTER TABLE _new_{name} RENAME TO {name}")


def upgrade() -> None:
    for name in TABLES:
        _rebuild(name, without_rowid=True)


def downgrade() -> None:
    for name in TABLES:
        _rebuild(name, without_rowid=False)
