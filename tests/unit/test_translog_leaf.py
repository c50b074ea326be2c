"""The ledger leaf written directly is exactly the canonical JSON of the leaf object."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from registry.translog import LEDGER_COLUMNS, canonical_json, ledger_leaf, ledger_leaf_obj

_text = st.one_of(
    st.none(), st.text(max_size=20), st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True)
)
_int = st.one_of(st.none(), st.integers(0, 2**62))


@given(
    kind=st.sampled_from(["contributor", "protocol"]),
    strings=st.tuples(_text, _text, _text, _text),
    model=st.text(max_size=10),
    ints=st.tuples(_int, _int, _int, _int),
    amount=st.integers(0, 2**62),
    demo=st.booleans(),
    digest=_text,
    at=st.one_of(
        st.datetimes(timezones=st.just(UTC)),
        st.datetimes().map(lambda d: d.isoformat(" ", "microseconds")),
    ),
)
def test_direct_leaf_is_the_canonical_json(
    kind: str,
    strings: tuple[Any, ...],
    model: str,
    ints: tuple[Any, ...],
    amount: int,
    demo: bool,
    digest: str | None,
    at: datetime | str,
) -> None:
    event_id, cid, owner, method = strings
    events, seq_from, seq_to, share = ints
    row = dict(
        zip(
            LEDGER_COLUMNS,
            (7, event_id, kind, cid, owner, model, method, amount, at, demo, events, digest,
             seq_from, seq_to, share),
            strict=True,
        )
    )  # fmt: skip
    leaf = ledger_leaf(row, digest)
    assert leaf == canonical_json(ledger_leaf_obj(row, digest))
    assert json.loads(leaf)["amountMicro"] == amount
