"""Migration 0004: rewards rows keyed by URL become `url:<URL>` keys (shown until the registry
at that URL names itself), and back on downgrade."""

from __future__ import annotations

from pathlib import Path

from tests.support.catalogue_db import at_revision, rows, upgraded, write

URL = "http://127.0.0.1:41234"


def test_0004_keys_rows_by_url_until_the_registry_names_itself(tmp_path: Path) -> None:
    path = at_revision(tmp_path, "0003")
    write(
        path,
        "INSERT INTO sync_cursors (registry_url, owner, stream, cursor, synced_at) "
        "VALUES (?, 'o', 'rewards', '17', '2026-12-01 10:00:00')",
        (URL + "/",),
    )
    write(
        path,
        "INSERT INTO reward_entries (registry_url, owner, cursor, event_id, "
        "contribution_id, model_id, method, amount_micro, at, demo) "
        "VALUES (?, 'o', '17', 'e', 'c_1', 'm', 'influence', 5, '2026-12-01 09:00:00', 0)",
        (URL,),
    )
    write(
        path,
        "INSERT INTO usage_days VALUES (?, 'c_1', '2026-12-01', 'm', 'influence', 1, 9, 5)",
        (URL,),
    )
    write(path, "INSERT INTO registry_models VALUES (?, 'm', 'Model', '', 0)", (URL,))

    upgraded(tmp_path, "0004")
    key = f"url:{URL}"
    for table in ("sync_cursors", "reward_entries", "usage_days", "registry_models"):
        assert rows(path, f"SELECT DISTINCT registry_key FROM {table}") == [(key,)], table
    assert rows(path, "SELECT url, registry_key FROM registry_addresses") == [(URL, key)]

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

    at_revision(tmp_path, "0003")
    for table in ("sync_cursors", "reward_entries", "usage_days", "registry_models"):
        assert rows(path, f"SELECT DISTINCT registry_url FROM {table}") == [(URL,)], table
