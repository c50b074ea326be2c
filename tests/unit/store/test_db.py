"""The catalogue database: WAL, private file modes, migrations with a backup first."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select

from app.domain.errors import BadInputError, KnownError
from app.store.db import DB_FILE_NAME, MIGRATIONS_DIR, Database
from app.store.models import HistoryEntry, Item


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_database_is_wal_private_and_at_head(tmp_path: Path) -> None:
    db = Database(tmp_path)
    try:
        with db.session() as s:
            s.add(Item(kind="dataset", title="t", source_path="/x"))
        conn = sqlite3.connect(tmp_path / DB_FILE_NAME)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        conn.close()
        assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert _mode(tmp_path / DB_FILE_NAME) == 0o600
        assert db.backup_path is None  # nothing to back up on a fresh database
    finally:
        db.dispose()


def test_reopening_at_head_makes_no_backup(tmp_path: Path) -> None:
    Database(tmp_path).dispose()
    db = Database(tmp_path)
    db.dispose()
    assert db.backup_path is None
    assert not list(tmp_path.glob("*.bak"))


def test_database_is_copied_aside_before_migrating(tmp_path: Path) -> None:
    """An older catalogue (at revision 0001) is backed up, then upgraded with its data kept."""
    from alembic import command

    from app.store.db import HEAD_REVISION, _alembic_config

    db = Database(tmp_path)
    with db.session() as s:
        s.add(Item(kind="dataset", title="precious", source_path="/x"))
    command.downgrade(_alembic_config(db.engine), "0001")
    db.dispose()

    reopened = Database(tmp_path)
    try:
        assert reopened.backup_path is not None
        assert _mode(reopened.backup_path) == 0o600
        copy = sqlite3.connect(reopened.backup_path)
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0001"
        assert copy.execute("SELECT title FROM items").fetchone()[0] == "precious"
        copy.close()
        conn = sqlite3.connect(tmp_path / DB_FILE_NAME)
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        conn.close()
        assert version == HEAD_REVISION
        with reopened.session() as s:
            assert [i.title for i in s.scalars(select(Item))] == ["precious"]
    finally:
        reopened.dispose()


def test_an_unknown_revision_is_refused_after_a_backup(tmp_path: Path) -> None:
    """A catalogue written by a newer version is not touched: backed up, then refused."""
    db = Database(tmp_path)
    db.dispose()
    conn = sqlite3.connect(tmp_path / DB_FILE_NAME)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()
    with pytest.raises(KnownError, match="newer version"):
        Database(tmp_path)
    assert len(list(tmp_path.glob("*.bak"))) == 1


@pytest.mark.parametrize(
    "content",
    [b"SQLite format 3\0" + b"\xff" * 200, bytes(range(256)) * 20],
    ids=["header", "noise"],
)
def test_a_damaged_catalogue_is_refused_clearly_and_left_as_it_was(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / DB_FILE_NAME).write_bytes(content)
    with pytest.raises(BadInputError, match="not a readable database") as caught:
        Database(tmp_path)
    assert caught.value.exit_code == 3 and caught.value.hint
    assert (tmp_path / DB_FILE_NAME).read_bytes() == content


def test_writes_roll_back_as_a_whole(tmp_path: Path) -> None:
    db = Database(tmp_path)
    try:
        with pytest.raises(RuntimeError), db.session() as s:
            item = Item(kind="dataset", title="half", source_path="/x")
            s.add(item)
            s.flush()
            s.add(HistoryEntry(item_id=item.id, to_state="draft", event="added"))
            s.flush()
            raise RuntimeError("crash in the middle")
        with db.session() as s:
            assert s.scalars(select(Item)).all() == []
            assert s.scalars(select(HistoryEntry)).all() == []
    finally:
        db.dispose()


def test_deleting_an_item_cascades_to_its_rows(tmp_path: Path) -> None:
    db = Database(tmp_path)
    try:
        with db.session() as s:
            item = Item(kind="dataset", title="t", source_path="/x")
            s.add(item)
            s.flush()
            s.add(HistoryEntry(item_id=item.id, to_state="draft", event="added"))
        with db.session() as s:
            s.delete(s.scalars(select(Item)).one())
        with db.session() as s:
            assert s.scalars(select(HistoryEntry)).all() == []
    finally:
        db.dispose()


def test_head_revision_constant_matches_the_migration_scripts(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from app.store.db import HEAD_REVISION, _alembic_config

    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    engine.dispose()
    assert head == HEAD_REVISION, "update app.store.db.HEAD_REVISION to the newest revision"
