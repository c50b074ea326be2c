"""Registry migrations keep data: 0003 folds the attributions table into the event rows (and
back on downgrade), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import Engine, text

from registry.db.session import alembic_config, make_engine

_EVENT = (
    "INSERT INTO usage_events (event_id, model_id, at, fee_micro, operator_fingerprint, demo, "
    "received_at) VALUES (:e, 'm', '2026-11-01 10:00:00', 100, 'op', false, "
    "'2026-11-01 10:00:00')"
)
_ATTRIBUTION = (
    "INSERT INTO attributions (event_id, contribution_id, weight_ppm, method) "
    "VALUES (:e, :c, :w, :m)"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """An engine on a database without any table."""
    if request.param == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    pg_url: str = request.getfixturevalue("pg_url")
    name = "m_" + secrets.token_hex(6)
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return make_engine(pg_url.rsplit("/", 1)[0] + f"/{name}")


def test_0003_folds_attributions_into_events_and_back(empty_db: Engine) -> None:
    cfg = alembic_config(empty_db)
    command.upgrade(cfg, "0002")
    with empty_db.begin() as c:
        for eid in ("e1", "e2", "e3"):
            c.execute(text(_EVENT), {"e": eid})
        # Inserted out of event order: each event keeps its own attributions in sent order.
        for eid, cid, w, m in [
            ("e2", "c_b", 5, "retrieval"),
            ("e1", "c_a", 700_000, "influence"),
            ("e2", "c_a", 1, "exact-match"),
            ("e1", "c_b", 300_000, "retrieval"),
        ]:
            c.execute(text(_ATTRIBUTION), {"e": eid, "c": cid, "w": w, "m": m})

    command.upgrade(cfg, "head")
    with empty_db.connect() as c:
        rows = dict(c.execute(text("SELECT event_id, attributions FROM usage_events")).all())
        tables = set(
            c.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if empty_db.dialect.name == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            ).scalars()
        )
    assert {k: json.loads(v) for k, v in rows.items()} == {
        "e1": [["c_a", 700_000, "influence"], ["c_b", 300_000, "retrieval"]],
        "e2": [["c_b", 5, "retrieval"], ["c_a", 1, "exact-match"]],
        "e3": [],
    }
    assert "attributions" not in tables

    command.downgrade(cfg, "0002")
    with empty_db.connect() as c:
        back = c.execute(
            text(
                "SELECT event_id, contribution_id, weight_ppm, method FROM attributions ORDER BY id"
            )
        ).all()
    assert [tuple(r) for r in back] == [
        ("e1", "c_a", 700_000, "influence"),
        ("e1", "c_b", 300_000, "retrieval"),
        ("e2", "c_b", 5, "retrieval"),
        ("e2", "c_a", 1, "exact-match"),
    ]
    empty_db.dispose()
