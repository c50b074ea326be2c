"""State that several API processes of one registry share (`serve --workers N`).

`rate_limit_buckets`: one token bucket per (budget, caller), updated with one atomic upsert per
request (registry.ratelimit.SharedTokenBuckets). On PostgreSQL the table is UNLOGGED: counters
need no WAL and no fsync, and losing them in a crash only forgives some requests.

`cache_generations`: one counter per in-memory cache. A change that makes cached facts wrong
bumps the counter in its own transaction; every process compares it with the generation its
cache was filled at (one primary-key read per usage batch) and drops the cache when it moved
(registry.ledger.LookupCache).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket", sa.String(200), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),  # Unix time, seconds
        sa.Column("allowed", sa.Boolean(), nullable=False),  # the last take's outcome
        prefixes=["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else [],
    )
    generations = op.create_table(
        "cache_generations",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(generations, [{"name": "lookups", "generation": 0}])


def downgrade() -> None:
    op.drop_table("cache_generations")
    op.drop_table("rate_limit_buckets")
