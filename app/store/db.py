"""Open the catalogue database: SQLite in WAL mode, 0600, migrated by Alembic.

Before any migration of an existing database the file is copied aside (Vorta does the same),
so a failed upgrade never costs the user their catalogue.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from app.domain.errors import BadInputError, KnownError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
DB_FILE_NAME = "catalogue.sqlite3"
# The newest Alembic revision. Kept here so that opening an up-to-date catalogue does not
# import Alembic at all (CLI start-up time); tests/unit/store checks it against the scripts.
HEAD_REVISION = "0015"


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    # A sync writes hundreds of MB in transactions of tens of MB: a page cache that holds a
    # transaction's pages writes each once (the default 2 MB spills and rewrites them), and
    # fewer checkpoints of a larger WAL copy fewer pages twice (a sync also checkpoints on a
    # thread of its own: Database.checkpoints_in_background).
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA wal_autocheckpoint=16384")
    cur.close()


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def _touch_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass


class Database:
    """The catalogue database of one data dir. Workers open their own sessions from it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DB_FILE_NAME
        self.backup_path: Path | None = None
        _touch_private(self.path)
        self.engine = create_engine(f"sqlite:///{self.path}", future=True)
        event.listen(self.engine, "connect", _on_connect)
        self._migrate()
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                try:
                    os.chmod(side, 0o600)
                except OSError:
                    pass
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _migrate(self) -> None:
        try:
            with self.engine.connect() as conn:
                tables = {
                    row[0]
                    for row in conn.exec_driver_sql(
                        "SELECT name FROM sqlite_master WHERE type='table'"
                    )
                }
                current = None
                if "alembic_version" in tables:
                    current = conn.exec_driver_sql(
                        "SELECT version_num FROM alembic_version"
                    ).scalar()
        except DatabaseError as exc:
            self.engine.dispose()
            raise BadInputError(
                f"this catalogue ({self.path}) is not a readable database (damaged, or not "
                "a Contributor Desk catalogue); it was not changed",
                hint="move it aside to start a new catalogue, or put a backup (*.bak) in its place",
            ) from exc
        if current == HEAD_REVISION:
            return
        from alembic import command
        from alembic.util.exc import CommandError

        if tables:
            self.backup_path = self._backup(str(current or "unversioned"))
        try:
            command.upgrade(_alembic_config(self.engine), "head")
        except CommandError as exc:
            raise KnownError(
                f"this catalogue ({self.path}) was written by a newer version of Contributor "
                f"Desk (database revision {current}); it was not changed",
                hint=f"update the app, or use a backup such as {self.backup_path}",
            ) from exc

    def _backup(self, revision: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        dest = self.path.with_name(f"{self.path.stem}.{revision}.{stamp}.bak")
        # sqlite3's online backup copies a consistent snapshot even with a WAL present.
        src = sqlite3.connect(self.path)
        try:
            dst = sqlite3.connect(dest)
            with dst:
                src.backup(dst)
            dst.close()
        finally:
            src.close()
        os.chmod(dest, 0o600)
        return dest

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any exception."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def checkpoints_in_background(self, every: float = 0.25) -> Iterator[None]:
        """While the block runs, a thread of its own copies the WAL into the database
        (passive checkpoints: never in a writer's way) so that commits of large transactions
        rarely do it themselves: their fsyncs overlap the writer's work."""
        stop = threading.Event()

        def run() -> None:
            conn = sqlite3.connect(self.path, timeout=0)
            try:
                while not stop.wait(every):
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error:
                        pass  # busy or locked: the next round, or the writer's own checkpoint
            finally:
                conn.close()

        worker = threading.Thread(target=run, name="catalogue-checkpoints", daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join()

    def dispose(self) -> None:
        self.engine.dispose()


def copy_database(src: Path, dest: Path) -> None:
    """Copy a catalogue (used by tests and by 'move data folder')."""
    shutil.copy2(src, dest)
