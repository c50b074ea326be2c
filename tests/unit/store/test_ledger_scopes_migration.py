"""Migrations 0014 and 0015: the ledger's per-entry rows and its rollup per day name their
registry key and owner by a scope id. Every row reads back as it was (joined to its scope),
entry ids are kept, the proof counts go on being kept by triggers, the schema is the models'
own; a downgrade puts the strings back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.store import rollups
from app.store.db import Database
from app.store.models import Base
from app.store.tlog_models import ledger_proofs
from tests.support.catalogue_db import at_revision, rows, write

KEY = "contributor-registry/reg_0123+abcd+" + "A" * 70  # as long as a real one
OTHER = "url:http://127.0.0.1:8000"
TABLES = (
    "reward_entries", "log_proofs", "log_leaf_events", "log_proof_counts", "ledger_rollup_days"
)  # fmt: skip

_ENTRY = (
    "INSERT INTO reward_entries (id, registry_key, owner, cursor, event_id, contribution_id, "
    "model_id, method, amount_micro, at, demo) VALUES (?, ?, ?, ?, ?, 'c_1', 'm', 'influence', "
    "?, '2026-12-01 09:00:00.000000', 0)"
)
_PROOF = "INSERT INTO log_proofs VALUES (?, ?, ?, ?, 9, ?, x'')"
_EVENTS = (
    "INSERT INTO log_leaf_events VALUES (?, ?, 'c_1', '2026-12-01', 'm', 'influence', ?, 4, ?)"
)

# each table's rows with their registry key and owner first, at either revision
_READ = {
    "reward_entries": "id, cursor, event_id, amount_micro",
    "log_proofs": "cursor, leaf_index, leaf",
    "log_leaf_events": "cursor, events",
    "log_proof_counts": "ledger",
    "ledger_rollup_days": "contribution_id, day, amount_micro, entries",
}


def _read(path: Path, scoped: bool) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, columns in _READ.items():
        picked = ", ".join(f"t.{c}" for c in columns.split(", "))
        if scoped:
            sql = (
                f"SELECT sc.registry_key, sc.owner, {picked} FROM {table} AS t "
                "JOIN ledger_scopes AS sc ON sc.id = t.scope"
            )
        else:
            sql = f"SELECT t.registry_key, t.owner, {picked} FROM {table} AS t"
        out[table] = sorted(rows(path, sql))
    return out


def _schema_differences(db: Database) -> list[Any]:
    assert rollups.LedgerRollupDay.__table__.metadata is Base.metadata  # its model is known
    with db.engine.connect() as conn:
        found = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    names = {*TABLES, "ledger_scopes"}
    return [d for d in found if any(name in repr(d) for name in names)]


def test_0014_and_0015_name_key_and_owner_by_scope_and_keep_every_row(tmp_path: Path) -> None:
    path = at_revision(tmp_path, "0013")
    write(path, _ENTRY, (7, KEY, "a", "1", "s1", 5), (9, KEY, "b", "1", "s1", 6),
          (12, OTHER, "a", "2", "s2", 7))  # fmt: skip
    write(path, _PROOF, (KEY, "a", "1", 3, b"{}"), (KEY, "a", "acceptance:c_1", 4, b"{}"),
          (KEY, "b", "1", 5, b"{}"), (KEY, "c", "8", 6, b"\x00\xff"))  # fmt: skip
    write(path, _EVENTS, (KEY, "a", "1", 11), (KEY, "b", "1", 12))
    write(
        path,
        "INSERT INTO ledger_rollup_days VALUES (?, ?, 'c_1', '2026-12-01', 'm', 'influence', ?, 1)",
        (KEY, "a", 5), (KEY, "b", 6), ("url:x", "z", 9),  # the last: a scope of its own
    )  # fmt: skip
    before = _read(path, scoped=False)
    assert before["log_proof_counts"] == [(KEY, "a", 1), (KEY, "b", 1), (KEY, "c", 1)]

    db = Database(tmp_path)  # upgrades to head
    try:
        assert _schema_differences(db) == []
        with db.session() as s:
            assert (ledger_proofs(s, KEY, "a"), ledger_proofs(s, KEY, "nobody")) == (1, 0)
    finally:
        db.dispose()
    assert _read(path, scoped=True) == before
    # one scope per key and owner that had rows, the strings nowhere else
    assert rows(path, "SELECT registry_key, owner FROM ledger_scopes ORDER BY id") == [
        (KEY, "a"), (KEY, "b"), (KEY, "c"), (OTHER, "a"), ("url:x", "z")
    ]  # fmt: skip
    for table in TABLES:
        columns = {r[1] for r in rows(path, f"PRAGMA table_info({table})")}
        assert "scope" in columns and not columns & {"registry_key", "owner"}, table
    # the triggers count on: a new ledger proof of scope 1, an acceptance proof (not
    # counted), one already stored (kept, not counted)
    added = write(
        path,
        "INSERT INTO log_proofs VALUES (?, ?, 7, 9, x'7b7d', x'') ON CONFLICT DO NOTHING",
        (1, "2"), (1, "acceptance:c_2"), (1, "1"),
    )  # fmt: skip
    assert added == 2
    assert rows(path, "SELECT ledger FROM log_proof_counts WHERE scope = 1") == [(2,)]
    write(path, "DELETE FROM log_proofs WHERE scope = 1 AND cursor = '2'")
    assert rows(path, "SELECT ledger FROM log_proof_counts WHERE scope = 1") == [(1,)]
    at_head = _read(path, scoped=True)
    assert len(at_head["log_proofs"]) == len(before["log_proofs"]) + 1  # the acceptance's

    at_revision(tmp_path, "0013")
    assert _read(path, scoped=False) == at_head
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'ledger_scopes'") == []
    write(path, _PROOF, (OTHER, "a", "2", 8, b"{}"))  # counted by the old triggers again
    assert (OTHER, "a", 1) in _read(path, scoped=False)["log_proof_counts"]
