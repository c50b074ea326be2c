"""Log leaves as the app expects them: the fields of a ledger entry the registry reported, and
whether a logged leaf says exactly that."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from app.registry_client.usage import RewardEntry
from app.store.rewards_models import RewardRecord


def at_z(value: datetime) -> str:
    """The time as the log writes it ("YYYY-MM-DDTHH:MM:SS.ffffffZ", UTC); isoformat, a few
    times cheaper than strftime, writes the same text for years from 1000."""
    if value.tzinfo is UTC:  # the usual case: the text before "+00:00"
        return value.isoformat("T", "microseconds")[:26] + "Z"
    if value.tzinfo is None:  # as the catalogue reads its times back: UTC
        return value.isoformat("T", "microseconds") + "Z"
    v = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return v.astimezone(UTC).replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


def at_log_text(e: RewardEntry) -> str:
    """A reported entry's time as the log writes it: its text as received when it came in
    that form, else formatted (`at_z`)."""
    return e.at_text or at_z(e.at)


def at_stored_text(e: RewardEntry) -> str:
    """A reported entry's time as SQLAlchemy's SQLite DateTime stores it (the wall time as
    given, "YYYY-MM-DD HH:MM:SS.ffffff"): read back exactly like the ORM's rows."""
    t = e.at_text
    if t:
        return t[:10] + " " + t[11:26]
    return e.at.isoformat(" ", "microseconds")[:26]


def entry_fields(
    cursor: str,
    event_id: str,
    contribution_id: str,
    model_id: str,
    method: str,
    amount: int,
    at: datetime,
    demo: bool,
) -> dict[str, Any]:
    return {
        "type": "ledger",
        "kind": "contributor",
        "id": int(cursor),
        "eventId": event_id,
        "contributionId": contribution_id,
        "modelId": model_id,
        "method": method,
        "amountMicro": amount,
        "at": at_z(at),
        "demo": demo,
    }


def record_fields(r: RewardRecord) -> dict[str, Any]:
    return entry_fields(
        r.cursor, r.event_id, r.contribution_id, r.model_id, r.method, int(r.amount_micro),
        r.at, bool(r.demo),
    )  # fmt: skip


def leaf_mismatch(leaf: bytes, fields: dict[str, Any], owner: str) -> str | None:
    """Why the logged leaf is not the entry the registry reported (None: it is). The leaf
    must be canonical JSON whose fields equal the reported ones and name the owner."""
    return checked_leaf(leaf, fields, owner)[0]


# The fast path's decoder and encoder: for a leaf that is one flat object of ASCII strings
# without escapes, integers, booleans and nulls, msgspec's sorted encoding is byte for byte
# json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), so a leaf it gives
# back unchanged is canonical. The decoder takes only such an object (anything else, a float
# or a nested value, is a DecodeError); any other leaf takes the json module's path below.
_DECODE = msgspec.json.Decoder(dict[str, str | int | bool | None])
_ENCODE = msgspec.json.Encoder(order="sorted")
_PICKERS: dict[tuple[str, ...], itemgetter[Any]] = {}  # the reported fields and the owner


class _LedgerLeaf(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The registry's ledger leaf (version 1), its fields in the canonical key order: a leaf
    of exactly these keys and types decodes into one, and encoding it gives the leaf back,
    byte for byte, when the leaf is canonical (ASCII without escapes, as above). The usual
    leaf takes this path, a few times cheaper than a dict; any other leaf the dict's."""

    amountMicro: int
    at: str
    contributionId: str | None
    demo: bool
    eventId: str | None
    events: int | None
    id: int
    kind: str
    method: str | None
    modelId: str
    owner: str | None
    seqFrom: int | None
    seqTo: int | None
    sharePpm: int | None
    type: str
    usageDigest: str | None
    v: int


_DECODE_LEDGER = msgspec.json.Decoder(_LedgerLeaf)
_ENCODE_PLAIN = msgspec.json.Encoder()
_GETTERS: dict[tuple[str, ...], attrgetter[Any]] = {}  # the reported fields and the owner


def _getter(keys: tuple[str, ...]) -> attrgetter[Any] | None:
    """The reported fields and the owner of a `_LedgerLeaf` (None: it has not them all)."""
    got = _GETTERS.get(keys)
    if got is None and set(keys) <= set(_LedgerLeaf.__struct_fields__):
        got = _GETTERS.setdefault(keys, attrgetter(*keys, "owner"))
    return got


def _as_ledger_leaf(leaf: bytes) -> _LedgerLeaf | None:
    """The leaf as a `_LedgerLeaf` when it is one and canonical (see there), else None."""
    try:
        obj = _DECODE_LEDGER.decode(leaf)
    except msgspec.DecodeError:
        return None
    return obj if _ENCODE_PLAIN.encode(obj) == leaf else None


def checked_leaves(
    leaves: Sequence[bytes], fields: Sequence[dict[str, Any]], owner: str
) -> list[tuple[str | None, int | None]]:
    """checked_leaf of each leaf against the fields at the same position (a page's worth in
    one call: the fast paths inline, the rest through checked_leaf)."""
    decode, encode = _DECODE.decode, _ENCODE.encode
    ledger, plain_encode = _DECODE_LEDGER.decode, _ENCODE_PLAIN.encode
    out: list[tuple[str | None, int | None]] = []
    add = out.append
    keys: tuple[str, ...] = ()
    pick: itemgetter[Any] | None = None
    get: attrgetter[Any] | None = None
    for leaf, f in zip(leaves, fields, strict=True):
        if leaf.isascii() and b"\\" not in leaf:
            if tuple(f) != keys:
                keys = tuple(f)
                pick, get = itemgetter(*keys, "owner"), _getter(keys)
            if get is not None:
                try:
                    obj = ledger(leaf)
                except msgspec.DecodeError:
                    obj = None
                if obj is not None and get(obj) == (*f.values(), owner):
                    if plain_encode(obj) == leaf:
                        add((None, obj.events))
                        continue
            try:
                plain = decode(leaf)
            except msgspec.DecodeError:
                plain = None
            if plain is not None and encode(plain) == leaf:
                assert pick is not None
                try:
                    same = pick(plain) == (*f.values(), owner)
                except KeyError:
                    same = False
                if same:
                    add((None, _events(plain)))
                    continue
        add(checked_leaf(leaf, f, owner))
    return out


def _events(obj: dict[str, Any]) -> int | None:
    events = obj.get("events")
    return events if type(events) is int else None


def checked_leaf(leaf: bytes, fields: dict[str, Any], owner: str) -> tuple[str | None, int | None]:
    """leaf_mismatch, with the events count the leaf names (None: it names none, or is not
    a JSON object)."""
    if leaf.isascii() and b"\\" not in leaf:
        get = _getter(tuple(fields))
        obj = _as_ledger_leaf(leaf) if get is not None else None
        if get is not None and obj is not None and get(obj) == (*fields.values(), owner):
            return None, obj.events
        try:
            plain = _DECODE.decode(leaf)
        except msgspec.DecodeError:
            plain = None
        if plain is not None and _ENCODE.encode(plain) == leaf:
            keys = tuple(fields)
            pick = _PICKERS.get(keys) or _PICKERS.setdefault(keys, itemgetter(*keys, "owner"))
            try:
                same = pick(plain) == (*fields.values(), owner)
            except KeyError:
                same = False
            if same:  # the same values as json.loads gives (no floats, nothing nested)
                return None, _events(plain)
    try:
        obj = json.loads(leaf)
    except (ValueError, UnicodeDecodeError):
        return "the logged leaf is not JSON", None
    if not isinstance(obj, dict):
        return "the logged leaf is not a JSON object", None
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical.encode() != leaf:
        return "the logged leaf is not canonical JSON", _events(obj)
    for k, v in {**fields, "owner": owner}.items():
        if obj.get(k) != v:
            return f"the registry reports {k} = {v!r}, its log says {obj.get(k)!r}", _events(obj)
    return None, _events(obj)
