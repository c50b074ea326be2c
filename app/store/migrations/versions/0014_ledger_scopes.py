"""The ledger's per-entry rows name their registry key and owner by a scope id
(`ledger_scopes`): `reward_entries`, `log_proofs` and `log_leaf_events` (and the proof counts
kept by triggers) hold an integer `scope` instead of the two strings, which were most of each
row and index entry a first sync wrote (a registry key is ~110 characters, an owner 64).
Rows are copied as they are; a downgrade puts the strings back.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A ledger entry's proof: not an acceptance proof (cursor "acceptance:<id>"), as
# app.services.transparency.acceptance files them (the same test as revision 0011's).
_LEDGER = "({row}.cursor < 'acceptance:' OR {row}.cursor >= 'acceptance;')"

# Each table: its columns after the key, and the statement that makes it with either key
# ("{key}": the key's column definitions, "{pk}": its primary key's names).
_ENTRY_COLUMNS = (
    "cursor", "event_id", "contribution_id", "model_id", "method", "amount_micro", "at", "demo"
)  # fmt: skip
_TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "reward_entries": (
        _ENTRY_COLUMNS,
        "CREATE TABLE _new_reward_entries (\n\tid INTEGER NOT NULL, \n\t{key}, "
        "\n\tcursor VARCHAR(64) NOT NULL, \n\tevent_id VARCHAR(128) NOT NULL, "
        "\n\tcontribution_id VARCHAR(128) NOT NULL, \n\tmodel_id VARCHAR(64) NOT NULL, "
        "\n\tmethod VARCHAR(16) NOT NULL, \n\tamount_micro BIGINT NOT NULL, "
        "\n\tat DATETIME NOT NULL, \n\tdemo BOOLEAN NOT NULL, \n\tPRIMARY KEY (id), "
        "\n\tCONSTRAINT uq_reward_entries_cursor UNIQUE ({pk}, cursor)\n)",
    ),
    "log_proofs": (
        ("cursor", "leaf_index", "tree_size", "leaf", "proof"),
        "CREATE TABLE _new_log_proofs (\n\t{key}, \n\tcursor TEXT NOT NULL, "
        "\n\tleaf_index BIGINT NOT NULL, \n\ttree_size BIGINT NOT NULL, "
        "\n\tleaf BLOB NOT NULL, \n\tproof BLOB NOT NULL, \n\tPRIMARY KEY ({pk}, cursor)\n)",
    ),
    "log_leaf_events": (
        ("contribution_id", "day", "model_id", "method", "cursor", "settlement", "events"),
        "CREATE TABLE _new_log_leaf_events (\n\t{key}, "
        "\n\tcontribution_id VARCHAR(128) NOT NULL, \n\tday DATE NOT NULL, "
        "\n\tmodel_id VARCHAR(64) NOT NULL, \n\tmethod VARCHAR(16) NOT NULL, "
        "\n\tcursor VARCHAR(64) NOT NULL, \n\tsettlement BIGINT NOT NULL, "
        "\n\tevents BIGINT NOT NULL, "
        "\n\tPRIMARY KEY ({pk}, contribution_id, day, model_id, method, cursor)\n) WITHOUT ROWID",
    ),
    "log_proof_counts": (
        ("ledger",),
        "CREATE TABLE _new_log_proof_counts (\n\t{key}, "
        "\n\tledger BIGINT DEFAULT '0' NOT NULL, \n\tPRIMARY KEY ({pk})\n)",
    ),
}
_SCOPE_KEY = ("scope INTEGER NOT NULL", "scope")
_STRING_KEY = ("registry_key TEXT NOT NULL, \n\towner {owner} NOT NULL", "registry_key, owner")
_OWNER_TYPE = {"log_proofs": "TEXT", "log_proof_counts": "TEXT"}  # others: VARCHAR(64)


def _create(name: str, scoped: bool) -> None:
    _columns, sql = _TABLES[name]
    key, pk = _SCOPE_KEY if scoped else _STRING_KEY
    key = key.format(owner=_OWNER_TYPE.get(name, "VARCHAR(64)"))
    op.execute(sql.format(key=key, pk=pk))


def _rebuild(scoped: bool) -> None:
    """Each table made again with the scope id (`scoped`) or the two strings as its key, its
    rows copied through ledger_scopes, entry ids kept."""
    if scoped:
        key, value = "scope", "sc.id"
        join = "sc.registry_key = t.registry_key AND sc.owner = t.owner"
    else:
        key, value, join = "registry_key, owner", "sc.registry_key, sc.owner", "sc.id = t.scope"
    for name, (columns, _sql) in _TABLES.items():
        _create(name, scoped)
        first = "id, " if name == "reward_entries" else ""
        picked = ", ".join(f"t.{c}" for c in columns)
        op.execute(
            f"INSERT INTO _new_{name} ({first}{key}, {', '.join(columns)}) "
            f"SELECT {'t.id, ' if first else ''}{value}, {picked} FROM {name} AS t "
            f"JOIN ledger_scopes AS sc ON {join}"
        )
        op.execute(f"DROP TABLE {name}")
        op.execute(f"ALTER TABLE _new_{name} RENAME TO {name}")


def _drop_triggers() -> None:
    op.execute("DROP TRIGGER IF EXISTS log_proofs_counted")
    op.execute("DROP TRIGGER IF EXISTS log_proofs_uncounted")


def upgrade() -> None:
    op.execute(
        "CREATE TABLE ledger_scopes (\n\tid INTEGER NOT NULL, \n\tregistry_key TEXT NOT NULL, "
        "\n\towner VARCHAR(64) NOT NULL, \n\tPRIMARY KEY (id), "
        "\n\tCONSTRAINT uq_ledger_scopes UNIQUE (registry_key, owner)\n)"
    )
    op.execute(
        "INSERT INTO ledger_scopes (registry_key, owner) SELECT registry_key, owner FROM ("
        + " UNION ".join(f"SELECT registry_key, owner FROM {name}" for name in _TABLES)
        + ") ORDER BY registry_key, owner"
    )
    _drop_triggers()
    _rebuild(scoped=True)
    op.execute(
        "CREATE INDEX ix_reward_entries_contribution ON reward_entries (scope, contribution_id)"
    )
    op.execute(
        "CREATE TRIGGER log_proofs_counted AFTER INSERT ON log_proofs "
        f"WHEN {_LEDGER.format(row='NEW')} BEGIN "
        "INSERT INTO log_proof_counts (scope, ledger) VALUES (NEW.scope, 1) "
        "ON CONFLICT (scope) DO UPDATE SET ledger = ledger + 1; END"
    )
    op.execute(
        "CREATE TRIGGER log_proofs_uncounted AFTER DELETE ON log_proofs "
        f"WHEN {_LEDGER.format(row='OLD')} BEGIN "
        "UPDATE log_proof_counts SET ledger = ledger - 1 WHERE scope = OLD.scope; END"
    )


def downgrade() -> None:
    _drop_triggers()
    _rebuild(scoped=False)
    op.execute(
        "CREATE INDEX ix_reward_entries_contribution "
        "ON reward_entries (registry_key, contribution_id)"
    )
    op.execute("DROP TABLE ledger_scopes")
    op.execute(
        "CREATE TRIGGER log_proofs_counted AFTER INSERT ON log_proofs "
        f"WHEN {_LEDGER.format(row='NEW')} BEGIN "
        "INSERT INTO log_proof_counts (registry_key, owner, ledger) "
        "VALUES (NEW.registry_key, NEW.owner, 1) "
        "ON CONFLICT (registry_key, owner) DO UPDATE SET ledger = ledger + 1; END"
    )
    op.execute(
        "CREATE TRIGGER log_proofs_uncounted AFTER DELETE ON log_proofs "
        f"WHEN {_LEDGER.format(row='OLD')} BEGIN "
        "UPDATE log_proof_counts SET ledger = ledger - 1 "
        "WHERE registry_key = OLD.registry_key AND owner = OLD.owner; END"
    )
