"""On PostgreSQL the log's entry bundles are stored lz4-compressed, out of line.

An entry bundle (256 leaves of canonical JSON, ~110 KB) is far larger than a page, so
PostgreSQL stores it in TOAST chunks of ~2 KB: each settlement of 5,000 events wrote ~2,000
chunk rows (and their index entries and WAL) for its ~10,000 leaves, most of the log's server
time. Migration 0012 stored them uncompressed (EXTERNAL); the leaves repeat their keys and
many values (owners, ids, models), and lz4 makes them a fraction of the chunks at a small CPU
cost. Values already stored keep their form until they are rewritten (the right-edge bundle
at the next append); PostgreSQL reads either. The hash tiles (8 KB of SHA-256 output each) do
not compress and stay as they are. SQLite stores blobs as they are: nothing to do there.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE log_bundles ALTER COLUMN data SET STORAGE EXTENDED, "
            "ALTER COLUMN data SET COMPRESSION lz4"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE log_bundles ALTER COLUMN data SET STORAGE EXTERNAL, "
            "ALTER COLUMN data SET COMPRESSION default"
        )
