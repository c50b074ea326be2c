"""The settler's leaf renderer (msgspec) writes exactly the canonical JSON of each leaf object.

The reference is `canonical_json(ledger_leaf_obj(row, digest))` (the stdlib encoder, keys
sorted, no spaces, non-ASCII as UTF-8). Property: for any batch of rows, with any Unicode in
the strings (control characters, U+2028, astral planes, lone surrogates), any integers (past
64 bits too) and the SQLite and PostgreSQL forms of `at` and `demo`, the batch renderer gives
the same bytes, or raises the same error as the reference.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import translog
from registry.translog import LEDGER_COLUMNS, canonical_json, ledger_leaf_obj

_any_char = st.characters(blacklist_categories=())  # surrogates and controls included
_odd = st.sampled_from(["\u2028", "\u2029", "\x7f", "\x00", "\x1f", '"', "\\", "/", "é", "😀"])
_text = st.one_of(
    st.none(),
    st.text(alphabet=st.one_of(_any_char, _odd), max_size=12),
    st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True),
)
_big = st.one_of(
    st.integers(0, 2**62),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-(2**80), 2**80),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
)
_int = st.one_of(st.none(), _big)
_at = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(
        min_value=datetime(1000, 1, 2),
        timezones=st.builds(
            timezone, st.integers(-14 * 60, 14 * 60).map(lambda m: timedelta(minutes=m))
        ),
    ),
    st.datetimes(timezones=st.just(ZoneInfo("Etc/UTC"))),  # psycopg's UTC
    st.datetimes(min_value=datetime(1000, 1, 2), timezones=st.just(ZoneInfo("Europe/London"))),
    st.datetimes(),  # naive: taken as UTC
    st.datetimes().map(lambda d: d.isoformat(" ", "microseconds")),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat("T", "microseconds")),
)
_row = st.tuples(
    _text,  # event_id
    st.sampled_from(["contributor", "protocol"]),
    _text,  # contribution_id
    _text,  # owner
    st.text(alphabet=st.one_of(_any_char, _odd), max_size=10),  # model_id
    _text,  # method
    _big,  # amount
    _at,
    st.one_of(st.booleans(), st.sampled_from([0, 1])),  # demo: bool, or SQLite's 0/1
    _int,  # events
    st.one_of(_text, st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),  # digest
    _int,
    _int,
    _int,  # seq_from, seq_to, share
)


def _reference(entry_id: int, row: tuple[Any, ...]) -> bytes:
    as_dict = dict(zip(LEDGER_COLUMNS, (entry_id, *row), strict=True))
    digest = row[10] if row[1] == "contributor" else None
    return canonical_json(ledger_leaf_obj(as_dict, digest))


def test_the_struct_fields_are_the_leaf_keys_in_sorted_order() -> None:
    row = dict.fromkeys(LEDGER_COLUMNS, 1) | {
        "kind": "protocol",
        "at": "2026-01-01 00:00:00.000000",
    }
    keys = list(ledger_leaf_obj(row, None))
    fields = list(translog._LedgerLeafStruct.__struct_fields__)
    assert fields == sorted(keys)


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=6), first_id=_big.filter(lambda i: i >= 0))
def test_batch_renderer_is_byte_identical_to_the_canonical_json(
    rows: list[tuple[Any, ...]], first_id: int
) -> None:
    ids = range(first_id, first_id + len(rows))
    try:
        expected = [_reference(i, r) for i, r in zip(ids, rows, strict=True)]
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8, the reference refuses it
        try:
            translog._render_settled(ids, rows)
        except UnicodeEncodeError:
            return
        raise AssertionError("the renderer accepted a string the reference refuses") from None
    assert translog._render_settled(ids, rows) == expected


def test_a_settlement_like_batch_takes_the_msgspec_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settler's ordinary rows are rendered by msgspec, not by the per-row fallback."""
    rows = [
        ("s9", "contributor", "c_1", "f" * 64, "m", "exact-match", 10, "2026-01-02 03:04:05.000006",
         False, 2, "a" * 64, 0, 9, 700000),
        (None, "protocol", None, None, "m", None, 5, datetime(2026, 1, 2, tzinfo=UTC), True,
         None, None, 0, 9, 700000),
    ]  # fmt: skip
    calls: list[Any] = []
    monkeypatch.setattr(translog, "ledger_leaf", lambda *a: calls.append(a))
    out = translog._render_settled([41, 42], rows)
    assert calls == []
    assert out == [_reference(41, rows[0]), _reference(42, rows[1])]
