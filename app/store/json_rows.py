"""Many rows in one SQLite statement: the rows as one JSON array parameter, inserted by
`INSERT … SELECT … FROM json_each(?)`.

Why: the sqlite3 module runs each step of a statement without the GIL, but `executemany`
binds every row in Python, so a thread inserting a page of rows takes the GIL back for each
of them and waits for it behind a thread that is busy in Python (up to the switch interval,
every row). One `INSERT … SELECT` is one step: a sync's writer thread stores a page while the
sync checks the next one, both at full speed (app.services.rewards). On a single thread it costs
about what `executemany` does.

What a row may hold: ints (SQLite's 64 bits), bools, None and text without NUL (SQLite's JSON
functions end a text at a NUL): `jsonable` says whether a row's texts are such; callers take
`executemany` for any other row. Bytes go in as their UTF-8 text (`as_text`) and are cast back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

encode = msgspec.json.Encoder().encode


def jsonable(texts: Iterable[str]) -> bool:
    """Whether these texts go through JSON into SQLite unchanged (none holds a NUL)."""
    return not any("\x00" in t for t in texts)


def insert_json(
    table: str, columns: Sequence[str], fixed: int, tail: str = "", blobs: Iterable[str] = ()
) -> str:
    """`INSERT INTO table (columns) SELECT …` of rows given as one JSON array: the first
    `fixed` columns from parameters bound once (`?1 …`), the others from each row in order
    (those named in `blobs` given as text, stored as its UTF-8 bytes), the array the last
    parameter; `tail`, e.g. an ON CONFLICT clause."""
    blob = set(blobs)
    values = [f"?{n}" for n in range(1, fixed + 1)]
    for i, column in enumerate(columns[fixed:]):
        value = f"json_extract(value, '$[{i}]')"
        values.append(f"CAST({value} AS BLOB)" if column in blob else value)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"FROM json_each(?{fixed + 1}) WHERE true {tail}"
    ).rstrip()


def as_text(data: bytes) -> str | None:
    """Bytes as the text `insert_json` stores back as them (None: they are not UTF-8 without
    NUL, and go by `executemany`)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None
