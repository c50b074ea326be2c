"""Log leaves as the app expects them: the fields of a ledger entry the registry reported, and
whether a logged leaf says exactly that."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
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


def checked_leaves(
    leaves: Sequence[bytes], fields: Sequence[dict[str, Any]], owner: str
) -> list[tuple[str | None, dict[str, Any]]]:
    """checked_leaf of each leaf against the fields at the same position (a page's worth in
    one call: the fast path inline, the rest through checked_leaf)."""
    decode, encode = _DECODE.decode, _ENCODE.encode
    out: list[tuple[str | None, dict[str, Any]]] = []
    add = out.append
    keys: tuple[str, ...] = ()
    pick: itemgetter[Any] | None = None
    for leaf, f in zip(leaves, fields, strict=True):
        if leaf.isascii() and b"\\" not in leaf:
            try:
                plain = decode(leaf)
            except msgspec.DecodeError:
                plain = None
            if plain is not None and encode(plain) == leaf:
                if pick is None or tuple(f) != keys:
                    keys = tuple(f)
                    pick = itemgetter(*keys, "owner")
                try:
                    same = pick(plain) == (*f.values(), owner)
                except KeyError:
                    same = False
                if same:
                    add((None, plain))
                    continue
        add(checked_leaf(leaf, f, owner))
    return out


def checked_leaf(
    leaf: bytes, fields: dict[str, Any], owner: str
) -> tuple[str | None, dict[str, Any]]:
    """leaf_mismatch, with the leaf's JSON object (empty when it is not one)."""
    if leaf.isascii() and b"\\" not in leaf:
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
                return None, plain
    try:
        obj = json.loads(leaf)
    except (ValueError, UnicodeDecodeError):
        return "the logged leaf is not JSON", {}
    if not isinstance(obj, dict):
        return "the logged leaf is not a JSON object", {}
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical.encode() != leaf:
        return "the logged leaf is not canonical JSON", obj
    for k, v in {**fields, "owner": owner}.items():
        if obj.get(k) != v:
            return f"the registry reports {k} = {v!r}, its log says {obj.get(k)!r}", obj
    return None, obj
