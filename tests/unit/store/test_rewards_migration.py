"""Migration 0004: rewards rows keyed by URL become `url:<URL>` keys (shown until the registry
at that URL names itself), and back on downgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

from app.store.db import DB_FILE_NAME, Database, _alembic_config

URL = "http://127.0.0.1:41234"


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_0004_keys_rows_by_url_until_the_registry_names_itself(tmp_path: Path) -> None:
    db = Database(tmp_path)
    command.downgrade(_alembic_config(db.engine), "0003")
    db.dispose()
    path = tmp_path / DB_FILE_NAME
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO sync_cursors (registry_url, owner, stream, cursor, synced_at) "
            "VALUES (?, 'o', 'rewards', '17', '2026-12-01 10:00:00')",
            (URL + "/",),
        )
        conn.execute(
            "INSERT INTO reward_entries (registry_url, owner, cursor, event_id, "
            "contribution_id, model_id, method, amount_micro, at, demo) "
            "VALUES (?, 'o', '17', 'e', 'c_1', 'm', 'influence', 5, '2026-12-01 09:00:00', 0)",
            (URL,),
        )
        conn.execute(
            "INSERT INTO usage_days VALUES (?, 'c_1', '2026-12-01', 'm', 'influence', 1, 9, 5)",
            (URL,),
        )
        conn.execute("INSERT INTO registry_models VALUES (?, 'm', 'Model', '', 0)", (URL,))
    conn.close()

    reopened = Database(tmp_path)  # upgrades to head
    reopened.dispose()
    key = f"url:{URL}"
    for table in ("sync_cursors", "reward_entries", "usage_days", "registry_models"):
        assert _rows(path, f"SELECT DISTINCT registry_key FROM {table}") == [(key,)], table
    assert _rows(path, "SELECT url, registry_key FROM registry_addresses") == [(URL, key)]

    # What is stored is found from the URL before any contact (offline), then moves to the
    # identity the registry names.
    from app.services.context import ServiceContext
    from app.services.registry_identity import RegistryDirectory
    from app.services.rewards import open_review

    ctx = ServiceContext(tmp_path, URL)
    try:
        before = open_review(ctx, "o").overview()
        assert (before.total_micro, before.entries, before.registry_id) == (5, 1, None)
        assert RegistryDirectory(ctx).record(URL, "reg_abc", unit="credits") == "reg_abc"
        after = open_review(ctx, "o").overview()
        assert (after.total_micro, after.entries, after.registry_id) == (5, 1, "reg_abc")
        assert after.daily == before.daily and after.unit == "credits"
        assert after.by_model == before.by_model and after.last_sync == before.last_sync
    finally:
        ctx.close()

    again = Database(tmp_path)
    command.downgrade(_alembic_config(again.engine), "0003")
    again.dispose()
    for table in ("sync_cursors", "reward_entries", "usage_days", "registry_models"):
        assert _rows(path, f"SELECT DISTINCT registry_url FROM {table}") == [(URL,)], table
