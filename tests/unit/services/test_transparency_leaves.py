"""The log-leaf check: a leaf is accepted only when it is canonical JSON whose fields equal the
reported entry's and name the owner, whichever path (the fast msgspec one or the json
module's) decides; each refusal names its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.services.transparency.leaves import at_z, checked_leaf, checked_leaves, entry_fields

OWNER = "f" * 64
AT = datetime(2026, 11, 20, 23, 59, 58, 120000, tzinfo=UTC)


def _fields() -> dict[str, Any]:
    return entry_fields("42", "s7", "ctb_1", "model-1", "influence", 1234, AT, False)


def _leaf(**change: Any) -> dict[str, Any]:
    obj = {**_fields(), "owner": OWNER, "events": 3, "usageDigest": "ab" * 32, "seqFrom": 1,
           "seqTo": 9, "sharePpm": 700000, "v": 1}  # fmt: skip
    obj.update(change)
    return obj


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "obj",
    [_leaf(), _leaf(seqFrom=None, usageDigest=None), _leaf(note="é ü"), _leaf(note='a"b\\c\n')],
)
def test_a_canonical_leaf_of_the_entry_is_accepted(obj: dict[str, Any]) -> None:
    assert checked_leaf(_canonical(obj), _fields(), OWNER) == (None, obj["events"])


@pytest.mark.parametrize(
    ("leaf", "why"),
    [
        (b'{"a":1,"a":1}', "not canonical"),  # a duplicate key: the object writes one
        (_canonical(_leaf())[:-1] + b" }", "not canonical"),
        (_canonical(_leaf(v=1e16)).replace(b"1e+16", b"1e16"), "not canonical"),
        (_canonical(_leaf()).replace(b'"events":3', b'"events":3,"events":3'), "not canonical"),
        (_canonical(_leaf(amountMicro=1235)), "amountMicro = 1234"),
        (_canonical(_leaf(owner="e" * 64)), "owner = "),
        (_canonical(_leaf(extra={"nested": 1})), None),
        (b"[1]", "not a JSON object"),
        (b"\xff", "not JSON"),
    ],
)
def test_a_leaf_that_is_not_the_entry_is_refused(leaf: bytes, why: str | None) -> None:
    got, _obj = checked_leaf(leaf, _fields(), OWNER)
    if why is None:  # nested values take the json module's path, accepted when canonical
        assert got is None
    else:
        assert got is not None and why in got


def test_a_page_of_leaves_is_checked_as_each_leaf_alone() -> None:
    """checked_leaves (a page in one call) says for every leaf what checked_leaf says."""
    leaves = [
        _canonical(_leaf()),
        _canonical(_leaf(amountMicro=1235)),
        b'{"a":1,"a":1}',
        _canonical(_leaf(note="é ü")),
        b"[1]",
        _canonical(_leaf(owner="e" * 64)),
        _canonical(_leaf(extra={"nested": 1})),
        _canonical(_leaf(events=None)),  # the registry's own shape, no events count
        _canonical(_leaf(demo=None)),  # not its shape: the generic path, refused there
        _canonical(_leaf(id=True)),
        _canonical({k: v for k, v in _leaf().items() if k != "seqTo"}),
    ]
    other = {**_fields(), "id": 43}  # a second entry: another value under the same keys
    fields = [*[_fields()] * 6, other, *[_fields()] * 4]
    assert checked_leaves(leaves, fields, OWNER) == [
        checked_leaf(leaf, f, OWNER) for leaf, f in zip(leaves, fields, strict=True)
    ]
    accepted = [(n, events) for n, (why, events) in enumerate(checked_leaves(leaves, fields, OWNER))
                if why is None]  # fmt: skip
    assert accepted == [(0, 3), (3, 3), (7, None), (10, 3)]
    assert checked_leaves(leaves[:1], [{"id": 42, **_fields()}], OWNER)[0][0] is None


@pytest.mark.parametrize(
    "at",
    [
        AT,
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
        AT.astimezone(timezone(timedelta(hours=2))),
        AT.replace(tzinfo=None),  # as the catalogue reads a time back: naive, UTC
        datetime(999, 1, 2, 3, 4, 5),
    ],
)
def test_at_z_writes_the_utc_time_with_a_z(at: datetime) -> None:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    slow = aware.astimezone(UTC).replace(tzinfo=None).isoformat("T", "microseconds") + "Z"
    assert at_z(at) == slow
