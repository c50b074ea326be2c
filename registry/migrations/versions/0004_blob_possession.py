"""Which key holds which blob (blob_possessions) and live possession nonces.

Deduplication across keys now needs a proof of possession: a contribution may reference a blob
without sending it only if its key uploaded that blob or proved it holds the bytes
(docs/protocol.md, "Proof of possession").

Existing data: the owners of completed (not failed) tus uploads hold those blobs, and the owners
of accepted contributions hold the blobs of those contributions that the registry stores, so
re-submitting one's own data stays free after the upgrade. The second rule is what the old,
global deduplication granted: a claim made before this revision cannot be told from an upload
after the fact, and is carried over as it stood.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = """
INSERT INTO blob_possessions (fingerprint, sha256, how, at)
SELECT fingerprint, sha256, 'migrated', :now FROM (
    SELECT u.owner_fingerprint AS fingerprint, u.sha256 AS sha256 FROM uploads u
    WHERE u.completed_at IS NOT NULL AND u.failure IS NULL
    UNION
    SELECT c.owner_fingerprint AS fingerprint, f.sha256 AS sha256
    FROM contributions c
    JOIN contribution_files f ON f.contribution_id = c.id
    JOIN blobs b ON b.sha256 = f.sha256
    WHERE c.state = 'accepted'
) AS held
"""


def upgrade() -> None:
    op.create_table(
        "blob_possessions",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("how", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["fingerprint"], ["keys.fingerprint"]),
        sa.PrimaryKeyConstraint("fingerprint", "sha256"),
    )
    op.create_table(
        "possession_challenges",
        sa.Column("contribution_id", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contribution_id"], ["contributions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("contribution_id", "sha256"),
    )
    op.get_bind().execute(
        sa.text(_BACKFILL).bindparams(
            sa.bindparam("now", value=datetime.now(UTC), type_=sa.DateTime(timezone=True))
        )
    )


def downgrade() -> None:
    op.drop_table("possession_challenges")
    op.drop_table("blob_possessions")
