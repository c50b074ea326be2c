"""The transparency log keeps its leaves as entry bundles, and settled ledger leaves as ranges.

`log_bundles` holds the log's leaves in the C2SP tlog-tiles entry-bundle encoding (each leaf
prefixed by its length as a big-endian uint16), 256 leaves per row, keyed by bundle index; the
bundle at the right edge grows in place (its first W leaves are the partial bundle of width W,
forever), like the hash tiles. One row per 256 leaves costs a fraction of one row per leaf.

`log_ranges` maps the ledger leaves the settler appends to their ledger ids: leaves idx ..
idx+count-1 are the ledger entries ledger_id .. ledger_id+count-1. Those leaves get no
`log_leaves` row; `log_leaves` keeps (kind, ref) for every other leaf (acceptances, ledger
entries logged by `log_ledger`), and its `leaf` bytes as before.

Existing leaves are copied into bundles here.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUNDLE = 256


def upgrade() -> None:
    bundles = op.create_table(
        "log_bundles",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "log_ranges",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("ledger_id", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ux_log_ranges_ledger_id", "log_ranges", ["ledger_id"], unique=True)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Bundles are JSON text of hashes and ids: pglz gains little and costs every write.
        op.execute("ALTER TABLE log_bundles ALTER COLUMN data SET STORAGE EXTERNAL")
    leaves = bind.execute(sa.text("SELECT idx, leaf FROM log_leaves ORDER BY idx"))
    current: int | None = None
    out = bytearray()
    rows = []
    for idx, leaf in leaves:
        n = int(idx) // BUNDLE
        if n != current:
            if current is not None:
                rows.append({"idx": current, "data": bytes(out)})
            current, out = n, bytearray()
        data = bytes(leaf)
        out += len(data).to_bytes(2, "big") + data
    if current is not None:
        rows.append({"idx": current, "data": bytes(out)})
    if rows:
        op.bulk_insert(bundles, rows)


def _entries(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 2], "big")
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return out


def downgrade() -> None:
    # The settler's ledger leaves live only in bundles: give them their log_leaves rows back.
    bind = op.get_bind()
    bundles = {
        int(i): _entries(bytes(d))
        for i, d in bind.execute(sa.text("SELECT idx, data FROM log_bundles"))
    }
    leaves = sa.table(
        "log_leaves",
        sa.column("idx", sa.BigInteger()),
        sa.column("kind", sa.String()),
        sa.column("ref", sa.String()),
        sa.column("leaf", sa.LargeBinary()),
    )
    rows = [
        {
            "idx": idx + k,
            "kind": "ledger",
            "ref": str(first + k),
            "leaf": bundles[(idx + k) // BUNDLE][(idx + k) % BUNDLE],
        }
        for idx, first, count in bind.execute(
            sa.text("SELECT idx, ledger_id, count FROM log_ranges")
        )
        for k in range(int(count))
    ]
    if rows:
        op.bulk_insert(leaves, rows)
    op.drop_index("ux_log_ranges_ledger_id", table_name="log_ranges")
    op.drop_table("log_ranges")
    op.drop_table("log_bundles")
