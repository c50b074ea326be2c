"""Batch reads and writes straight through the DB driver, on a session's own transaction.

Usage ingestion writes ~11 rows per event; SQLAlchemy's per-row parameter processing costs more
than SQLite's inserts themselves, so the hot path talks to the driver: PostgreSQL gets COPY and
`= ANY(<JSON array>)` lookups, SQLite gets multi-row INSERT ... VALUES statements and
`IN (SELECT value FROM json_each(?))`.
Values must already be in storage form: callers render dates through render_datetime /
render_date, which produce exactly what SQLAlchemy's SQLite types store (naive UTC text), so
ORM reads of these rows parse them back unchanged.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Session

# PostgreSQL type names for binary COPY (column types are code constants, never user input).
_PG_TYPES: tuple[tuple[type, str], ...] = (
    (Boolean, "bool"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (DateTime, "timestamptz"),
    (Date, "date"),
    (String, "text"),
    (Text, "text"),
    (LargeBinary, "bytea"),
)


# Rows per multi-row INSERT on SQLite (fewer statement steps; see BulkDb._sqlite_values).
SQLITE_ROWS = 500
# Page cache of a connection that ingests, and its WAL checkpoint interval (pages of 4 KiB).
SQLITE_CACHE_KIB = 64 * 1024
SQLITE_CHECKPOINT_PAGES = 16_384


def pg_copy_types(table: Table, columns: Sequence[str]) -> list[str]:
    """The binary COPY type of each column (BigInteger before Integer: it subclasses it)."""
    out = []
    for name in columns:
        column_type = table.c[name].type
        for sa_type, pg_name in _PG_TYPES:
            if isinstance(column_type, sa_type):
                out.append(pg_name)
                break
        else:  # pragma: no cover - a new column type needs a mapping here
            raise TypeError(f"no binary COPY type for {table.name}.{name}")
    return out


def sqlite_datetime(value: datetime) -> str:
    """SQLAlchemy's SQLite DateTime text ("YYYY-MM-DD HH:MM:SS.ffffff", naive UTC), built by
    datetime's C isoformat (a third cheaper than formatting the fields in Python)."""
    v = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return v.isoformat(" ", "microseconds")


def sqlite_date(value: date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _same(value: Any) -> Any:
    return value


class BulkDb:
    """Driver-level helpers bound to the session's current connection and transaction.

    Table and column names are code constants, never user input; values are always bound.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        connection = session.connection()
        self.dialect = connection.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):  # pragma: no cover
            raise RuntimeError(f"unsupported database dialect {self.dialect}")
        self.raw: Any = connection.connection.driver_connection
        sqlite = self.dialect == "sqlite"
        self.render_datetime: Callable[[datetime], Any] = sqlite_datetime if sqlite else _same
        self.render_date: Callable[[date], Any] = sqlite_date if sqlite else _same

    def tune_for_bulk_writes(self) -> None:
        """SQLite: a page cache that holds the hot part of the ledger and bucket indexes, and
        fewer WAL checkpoints (per connection, so checked each batch: one cheap PRAGMA read).

        A batch dirties a few thousand index pages spread over the bucket table; with the
        default 2 MiB cache they are read back from the OS on every batch, and the default
        checkpoint every 1,000 WAL pages runs after nearly every commit. Both together cost
        about a quarter of the throughput once the database holds 100,000+ events.
        (This belongs with the other PRAGMAs of the engine; it is here so that the server's
        other connections keep the defaults.)
        """
        if self.dialect != "sqlite":
            return
        ((cache,),) = self._run("PRAGMA cache_size")  # > 0: pages; < 0: KiB
        if cache > -SQLITE_CACHE_KIB:
            self._run(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
            # Not lowered where a background checkpointer set a larger backstop (db/checkpointer).
            ((pages,),) = self._run("PRAGMA wal_autocheckpoint")
            if pages < SQLITE_CHECKPOINT_PAGES:
                self._run(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")

    def _run(self, sql: str, params: Any = None, *, many: bool = False) -> list[tuple[Any, ...]]:
        cur = self.raw.cursor()
        try:
            if many:
                cur.executemany(sql, params)
                return []
            cur.execute(sql, () if params is None else params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def _changes(self, sql: str, params: Any, *, many: bool = False) -> int:
        """Run a write statement; the number of rows it inserted or updated."""
        cur = self.raw.cursor()
        try:
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)
            return int(cur.rowcount)
        finally:
            cur.close()

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement written with `?` placeholders (`%s` on PostgreSQL); its rows."""
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        return self._run(sql, tuple(params))

    def select_in(
        self, table: str, key: str, columns: Sequence[str], values: Iterable[str]
    ) -> list[tuple[Any, ...]]:
        """Rows of `table` whose `key` is one of `values`, in one statement with one parameter."""
        wanted = sorted(set(values))
        if not wanted:
            return []
        cols = ", ".join(columns)
        if self.dialect == "postgresql":
            # One JSON text parameter: psycopg dumps a Python list as a text array with a regex
            # escape check per element, which cost more client CPU than the query itself.
            return self._run(
                f"SELECT {cols} FROM {table} "
                f"WHERE {key} = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))",
                (json.dumps(wanted),),
            )
        return self._run(
            f"SELECT {cols} FROM {table} WHERE {key} IN (SELECT value FROM json_each(?))",
            (json.dumps(wanted),),
        )

    def _copy(self, cur: Any, table: Table, target: str, columns: Sequence[str], rows: Any) -> None:
        """Binary COPY: half the client-side cost of text COPY per row."""
        cols = ", ".join(columns)
        with cur.copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(pg_copy_types(table, columns))
            for row in rows:
                cp.write_row(row)

    def insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            with self.raw.cursor() as cur:
                self._copy(cur, table, table.name, columns, rows)
            return
        cols = ", ".join(columns)
        self._sqlite_values(f"INSERT INTO {table.name} ({cols}) VALUES {{}}", len(columns), rows)

    def _sqlite_values(self, template: str, width: int, rows: list[tuple[Any, ...]]) -> int:
        """Run `template` with multi-row VALUES lists of up to SQLITE_ROWS rows each; the number
        of rows written (inserted or updated).

        One statement step per row (executemany) costs sqlite3 about three times the engine's
        own insert work; a few hundred rows per statement leave only the engine's share. The
        chunk size is fixed, so each (table, width) compiles at most two statements per batch
        and later batches find them in the driver's statement cache.
        """
        per = max(1, min(SQLITE_ROWS, self._sqlite_max_params() // width))
        one = "(" + ", ".join("?" * width) + ")"
        flat = list(chain.from_iterable(rows))
        step = per * width
        full, rest = divmod(len(rows), per)
        written = 0
        if full:
            sql = template.format(", ".join([one] * per))
            chunks = [flat[i : i + step] for i in range(0, full * step, step)]
            written += self._changes(sql, chunks, many=True)
        if rest:
            written += self._changes(template.format(", ".join([one] * rest)), flat[full * step :])
        return written

    def _sqlite_max_params(self) -> int:
        try:
            return int(self.raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        except AttributeError:  # pragma: no cover - sqlite3 before Python 3.11
            return 999

    def upsert_add(
        self,
        table_: Table,
        columns: Sequence[str],
        key: Sequence[str],
        rows: list[tuple[Any, ...]],
        limits: dict[str, int] | None = None,
    ) -> int:
        """Insert rows; where `key` exists already, add the other columns to the stored ones.

        With `limits` ({column: maximum}), a stored row whose sum would exceed a maximum is left
        unchanged. Returns the number of rows inserted or updated: fewer than `len(rows)` means
        some stored rows were at their limits (the caller decides what that means; new rows are
        inserted as given, so the caller keeps each increment within the limits)."""
        if not rows:
            return 0
        table = table_.name
        sums = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns if c not in key)
        conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sums}"
        if limits:
            # Limits are code constants (ints), never user input.
            conflict += " WHERE " + " AND ".join(
                f"{table}.{c} + excluded.{c} <= {int(m)}" for c, m in sorted(limits.items())
            )
        cols = ", ".join(columns)
        if self.dialect == "postgresql":
            # COPY into a scratch table, then one set-based upsert. (One INSERT ... SELECT FROM
            # unnest() of binary arrays costs the server the same, but psycopg builds binary
            # arrays in Python: ~3x the client CPU of a binary COPY.)
            scratch = self._pg_scratch(table_, columns, rows)
            with self.raw.cursor() as cur:
                # In key order: concurrent upserts lock shared rows in the same order.
                order = ", ".join(key)
                cur.execute(
                    f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {scratch} "
                    f"ORDER BY {order} {conflict}"
                )
                written = int(cur.rowcount)
                cur.execute(f"DELETE FROM {scratch}")
            return written
        return self._sqlite_values(
            f"INSERT INTO {table} ({cols}) VALUES {{}} {conflict}", len(columns), rows
        )

    def _pg_scratch(
        self, table_: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> str:
        """COPY rows into this session's scratch copy of `table_` (emptied at commit); its name."""
        scratch = f"{table_.name}_batch"
        with self.raw.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {scratch} "
                f"(LIKE {table_.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._copy(cur, table_, scratch, columns, rows)
        return scratch

    def insert_new(
        self, table_: Table, columns: Sequence[str], key: str, rows: list[tuple[Any, ...]]
    ) -> set[Any]:
        """Insert the rows whose `key` (a unique column, first in `columns`) is not stored yet;
        the keys inserted. A row that a concurrent transaction is inserting is waited for, then
        skipped if that transaction commits: no unique violation, whatever the overlap."""
        if not rows:
            return set()
        table = table_.name
        cols = ", ".join(columns)
        conflict = f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
        if self.dialect == "postgresql":
            scratch = self._pg_scratch(table_, columns, rows)
            with self.raw.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {scratch} "
                    f"ORDER BY {key} {conflict}"
                )
                inserted = {r[0] for r in cur.fetchall()}
                cur.execute(f"DELETE FROM {scratch}")
            return inserted
        width = len(columns)
        per = max(1, min(SQLITE_ROWS, self._sqlite_max_params() // width))
        one = "(" + ", ".join("?" * width) + ")"
        inserted = set()
        for i in range(0, len(rows), per):
            part = rows[i : i + per]
            sql = f"INSERT INTO {table} ({cols}) VALUES {', '.join([one] * len(part))} {conflict}"
            inserted.update(r[0] for r in self._run(sql, list(chain.from_iterable(part))))
        return inserted
