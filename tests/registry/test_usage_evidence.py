"""Usage evidence: checked at intake against the contribution's files (per-event reason codes),
stored inside the event (so the event digest covers it) and read back with the events of a
ledger entry, byte for byte, so a contributor can recompute every digest and check every span
against their own copy of the files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from registry.blobstore import FileBlobStore
from registry.db.models import Contribution
from registry.db.usage_models import LedgerEntry, UsageEvent
from registry.seed import seed_demo
from registry.usage_rules import evidence_json, evidence_ok, evidence_reason, hex_files
from tests.support.usage_data import UsageWorld, add_files, usage_world

AT = datetime(2026, 11, 2, 12, 0, 0, 250_000, tzinfo=UTC)
TEXT = b"line one\nthe second line, longer\nthird\n" * 20
DATA = bytes(range(256)) * 8


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _span(data: bytes, offset: int, length: int, **extra: Any) -> dict[str, Any]:
    return {
        "fileSha256": _sha(data),
        "offset": offset,
        "length": length,
        "spanSha256": _sha(data[offset : offset + length]),
        **extra,
    }


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(db_url, tmp_path) as w:
        a = w.contributors[0]
        with w.sessions() as s:
            add_files(s, w.ids_of(a)[0], {"notes.txt": TEXT, "table.bin": DATA})
        yield w


def _event(eid: str, attributions: list[dict[str, Any]], at: datetime = AT) -> dict[str, Any]:
    return {
        "eventId": eid,
        "modelId": "test-model",
        "at": at.isoformat(),
        "feeMicro": 1_000_003,
        "attributions": attributions,
    }


def _attr(cid: str, method: str, evidence: Any = None, weight: float = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"contributionId": cid, "weight": weight, "method": method}
    if evidence is not None:
        out["evidence"] = evidence
    return out


def _reasons(body: dict[str, Any], eid: str) -> list[tuple[str, str]]:
    for r in body["rejected"]:
        if r["eventId"] == eid:
            return [(x["code"], x["path"]) for x in r["reasons"]]
    return []


def test_each_reason_code(world: UsageWorld) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a)[0], world.ids_of(b)[0]
    good = _span(TEXT, 9, 22, excerpt="the second line")
    E, R = "exact-match", "retrieval"
    cases: dict[str, tuple[dict[str, Any], tuple[str, str]]] = {
        "not-object": (_attr(ca, E, "abc"), ("invalid_evidence", "attributions[0].evidence")),
        "list": (_attr(ca, E, [1]), ("invalid_evidence", "attributions[0].evidence")),
        "influence": (
            _attr(ca, "influence", {"fileSha256": _sha(TEXT)}),
            ("invalid_evidence", "attributions[0].evidence"),
        ),
        "unknown-key": (
            _attr(ca, E, {**good, "extra": 1}),
            ("invalid_evidence", "attributions[0].evidence"),
        ),
        "upper-hex": (
            _attr(ca, E, {**good, "fileSha256": _sha(TEXT).upper()}),
            ("invalid_evidence", "attributions[0].evidence.fileSha256"),
        ),
        "missing-span": (
            _attr(ca, E, {"fileSha256": _sha(TEXT)}),
            ("invalid_evidence", "attributions[0].evidence.offset"),
        ),
        "float-offset": (
            _attr(ca, E, {**good, "offset": 9.0}),
            ("invalid_evidence", "attributions[0].evidence.offset"),
        ),
        "bool-length": (
            _attr(ca, E, {**good, "length": True}),
            ("invalid_evidence", "attributions[0].evidence.length"),
        ),
        "negative-offset": (
            _attr(ca, E, {**good, "offset": -1}),
            ("invalid_evidence", "attributions[0].evidence.offset"),
        ),
        "zero-length": (
            _attr(ca, E, {**good, "length": 0}),
            ("invalid_evidence", "attributions[0].evidence.length"),
        ),
        "long-span": (
            _attr(ca, E, {**good, "length": 1_048_577}),
            ("invalid_evidence", "attributions[0].evidence.length"),
        ),
        "bad-span-hash": (
            _attr(ca, E, {**good, "spanSha256": "x" * 64}),
            ("invalid_evidence", "attributions[0].evidence.spanSha256"),
        ),
        "long-excerpt": (
            _attr(ca, E, {**good, "excerpt": "x" * 281}),
            ("invalid_evidence", "attributions[0].evidence.excerpt"),
        ),
        "excerpt-on-retrieval": (
            _attr(ca, R, {"fileSha256": _sha(TEXT), "excerpt": "x"}),
            ("invalid_evidence", "attributions[0].evidence"),
        ),
        "partial-retrieval-span": (
            _attr(ca, R, {"fileSha256": _sha(TEXT), "offset": 0}),
            ("invalid_evidence", "attributions[0].evidence"),
        ),
        "file-of-another-contribution": (
            _attr(ca, R, {"fileSha256": _sha(b"not a file of it")}),
            ("evidence_file_not_in_contribution", "attributions[0].evidence.fileSha256"),
        ),
        "file-not-in-this-contribution": (
            _attr(world.ids_of(a)[1], E, good),
            ("evidence_file_not_in_contribution", "attributions[0].evidence.fileSha256"),
        ),
        "past-the-end": (
            _attr(ca, E, _span(TEXT, len(TEXT) - 4, 5)),
            ("evidence_span_out_of_range", "attributions[0].evidence.length"),
        ),
        "retrieval-past-the-end": (
            _attr(ca, R, {**_span(DATA, len(DATA), 1)}),
            ("evidence_span_out_of_range", "attributions[0].evidence.length"),
        ),
    }
    events = [_event(name, [attr]) for name, (attr, _) in cases.items()]
    valid = {
        "exact": _attr(ca, E, good),
        "exact-at-the-end": _attr(ca, E, _span(TEXT, len(TEXT) - 5, 5)),
        "retrieval-file": _attr(ca, R, {"fileSha256": _sha(DATA)}),
        "retrieval-chunk": _attr(ca, R, _span(DATA, 512, 512)),
        "influence-null": {**_attr(ca, "influence"), "evidence": None},
    }
    events += [_event(name, [attr, _attr(cb, "influence")]) for name, attr in valid.items()]
    # A second attribution's evidence is reported at its own index.
    events.append(
        _event("second", [_attr(cb, "influence"), _attr(ca, E, _span(TEXT, len(TEXT), 1))])
    )
    r = world.post_usage(events)
    assert r.status_code == 200, r.text
    body = r.json()
    for name, (_, expected) in cases.items():
        assert _reasons(body, name) == [expected], name
    assert _reasons(body, "second") == [
        ("evidence_span_out_of_range", "attributions[1].evidence.length")
    ]
    assert sorted(body["accepted"]) == sorted(valid)


def test_evidence_is_judged_with_the_other_reasons(world: UsageWorld) -> None:
    """Every reason of an event is listed, evidence ones included."""
    ca = world.ids_of(world.contributors[0])[0]
    ev = _event("both", [_attr(ca, "exact-match", {"fileSha256": _sha(TEXT)}, weight=-1)])
    body = world.post_usage([ev]).json()
    assert _reasons(body, "both") == [
        ("negative_weight", "attributions[0].weight"),
        ("invalid_evidence", "attributions[0].evidence.offset"),
    ]


SHA_A, SHA_B = _sha(b"a"), _sha(b"b")
FILES = {SHA_A: 100, SHA_B: 0}
_hexes = st.sampled_from([SHA_A, SHA_B, _sha(b"c"), SHA_A.upper(), "ab", "", 7])
_ints = st.one_of(
    st.integers(-2, 110),
    st.sampled_from([2**63, 1_048_576, 1_048_577, True, 1.0, None, "1"]),
)
_evidence = st.one_of(
    st.dictionaries(
        st.sampled_from(["fileSha256", "offset", "length", "spanSha256", "excerpt", "other"]),
        st.one_of(_hexes, _ints, st.text(max_size=300), st.sampled_from(["x\x00", "\ud800"])),
        max_size=6,
    ),
    st.builds(
        lambda f, o, n, h, x: {"fileSha256": f, "offset": o, "length": n, "spanSha256": h, **x},
        _hexes,
        _ints,
        _ints,
        _hexes,
        st.one_of(st.just({}), st.builds(lambda t: {"excerpt": t}, st.text(max_size=300))),
    ),
    st.builds(lambda f: {"fileSha256": f}, _hexes),
    st.builds(  # mostly valid, a span near the end of the file
        lambda o, n, x: {"fileSha256": SHA_A, "offset": o, "length": n, "spanSha256": SHA_B, **x},
        st.integers(0, 60),
        st.integers(1, 60),
        st.one_of(st.just({}), st.builds(lambda t: {"excerpt": t}, st.text(max_size=300))),
    ),
    st.sampled_from([None, [], "x", 1]),
)


@settings(max_examples=2000, deadline=None, database=None)
@given(
    evidence=_evidence,
    method=st.sampled_from(["exact-match", "retrieval", "influence"]),
    files=st.sampled_from([FILES, None]),
)
def test_the_quick_and_the_full_evidence_check_agree(
    evidence: Any, method: str, files: dict[str, int] | None
) -> None:
    """Intake's hot path (evidence_ok) accepts exactly what the full check finds no reason
    for, and stores valid evidence as canonical JSON."""
    if evidence is None:
        return
    reason = evidence_reason(evidence, method, files, "attributions[0]")
    ok = evidence_ok(evidence, method, hex_files(FILES.items()) if files else None)
    assert ok == (reason is None and files is not None), (reason, ok)
    if ok:
        canonical = json.dumps(evidence, sort_keys=True, separators=(",", ":"))
        assert evidence_json(evidence) == canonical


def _digest(item: dict[str, Any]) -> str:
    """The event digest from the page's fields alone (docs/protocol.md), independently of the
    registry's code."""
    at = datetime.fromisoformat(item["at"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = (item["eventId"], item["modelId"], at, str(item["feeMicro"]), item["attributionsJson"])
    return hashlib.sha256("\x00".join(fields).encode("utf-8")).hexdigest()


def _entry_digest(pairs: list[tuple[str, int]]) -> str:
    return hashlib.sha256(b"".join(f"{d} {a}\n".encode() for d, a in sorted(pairs))).hexdigest()


def _entries(world: UsageWorld, who: Any) -> list[dict[str, Any]]:
    r = world.client.get("/v1/me/rewards", params={"limit": 1000}, headers=who.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _events_of(world: UsageWorld, who: Any, cursor: str) -> list[dict[str, Any]]:
    url = f"/v1/me/rewards/{cursor}/events"
    r = world.client.get(url, params={"limit": 1000}, headers=who.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_evidence_round_trips_through_the_events_page(world: UsageWorld) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a)[0], world.ids_of(b)[0]
    exact = _span(TEXT, 9, 22, excerpt="the second line, «long»")
    chunk = _span(DATA, 1024, 512)
    sent = [
        _event("e1", [_attr(ca, "exact-match", exact, 0.7), _attr(cb, "influence")]),
        _event("e2", [_attr(ca, "retrieval", chunk), _attr(ca, "influence", weight=2)]),
        _event("e3", [_attr(ca, "retrieval", {"fileSha256": _sha(TEXT)})]),
        _event("e4", [_attr(ca, "exact-match", weight=3)]),  # evidence is optional
    ]
    r = world.post_usage(sent)
    assert sorted(r.json()["accepted"]) == ["e1", "e2", "e3", "e4"], r.text
    got: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in _entries(world, a):
        items = _events_of(world, a, entry["cursor"])
        for item in items:
            assert item["modelId"] == "test-model"
            assert _digest(item) == item["digest"]
            got[(item["eventId"], entry["method"])] = item
        pairs = [(x["digest"], x["amountMicro"]) for x in items]
        assert _entry_digest(pairs) == entry["digest"]
    nulls = {"offset": None, "length": None, "spanSha256": None, "excerpt": None}
    assert got[("e1", "exact-match")]["evidence"] == exact
    assert got[("e2", "retrieval")]["evidence"] == {**chunk, "excerpt": None}
    assert got[("e2", "influence")]["evidence"] is None
    assert got[("e3", "retrieval")]["evidence"] == {**nulls, "fileSha256": _sha(TEXT)}
    assert got[("e4", "exact-match")]["evidence"] is None
    # Stored canonical: keys sorted, no spaces, ASCII; the 4th element of its item.
    stored = got[("e1", "exact-match")]["attributionsJson"]
    assert stored == (
        f'[["{ca}",700000,"exact-match",{{"excerpt":"the second line, \\u00ablong\\u00bb",'
        f'"fileSha256":"{_sha(TEXT)}","length":22,"offset":9,"spanSha256":'
        f'"{exact["spanSha256"]}"}}],["{cb}",1000000,"influence"]]'
    )
    with world.sessions() as s:
        row = s.get(UsageEvent, "e1")
        assert row is not None and row.attributions == stored
        assert row.attribution_list() == [
            (ca, 700_000, "exact-match"),
            (cb, 1_000_000, "influence"),
        ]
    # The span the registry hands back is the one in the contributor's own file.
    ev = got[("e2", "retrieval")]["evidence"]
    assert _sha(DATA[ev["offset"] : ev["offset"] + ev["length"]]) == ev["spanSha256"]


def _flip(text: str, position: int, bit: int) -> str:
    return text[:position] + chr(ord(text[position]) ^ (1 << bit)) + text[position + 1 :]


@pytest.fixture
def settled_event(world: UsageWorld) -> tuple[UsageWorld, dict[str, Any], dict[str, Any]]:
    a = world.contributors[0]
    ca = world.ids_of(a)[0]
    world.post_usage(
        [_event("ev", [_attr(ca, "exact-match", _span(TEXT, 9, 22, excerpt="second line"))])]
    )
    (entry,) = _entries(world, a)
    (item,) = _events_of(world, a, entry["cursor"])
    return world, entry, item


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(data=st.data())
def test_any_single_bit_change_of_a_stored_event_changes_its_digest(
    settled_event: tuple[UsageWorld, dict[str, Any], dict[str, Any]], data: st.DataObject
) -> None:
    """Flip one bit of one stored field of a settled event (its evidence included) directly in
    the database: the event's digest, recomputed by the client from what the registry now
    serves, no longer gives the entry's (logged) digest."""
    world, entry, item = settled_event
    a = world.contributors[0]
    stored = item["attributionsJson"]
    evidence_at = stored.index("{")
    field = data.draw(st.sampled_from(["evidence", "attributions", "eventId", "fee", "at"]))
    bit = data.draw(st.integers(0, 6))
    values: dict[str, Any] = {}
    if field in ("evidence", "attributions"):
        low = evidence_at if field == "evidence" else 0
        position = data.draw(st.integers(low, len(stored) - 1))
        changed = _flip(stored, position, bit)
        assume("\x00" not in changed)
        try:
            parsed = json.loads(changed)
            assume(
                all(isinstance(x, list) and len(x) in (3, 4) for x in parsed)
                and all(type(x[1]) is int and x[1] > 0 for x in parsed)
            )
        except (ValueError, TypeError):
            assume(False)
        values["attributions"] = changed
    elif field == "eventId":
        position = data.draw(st.integers(0, len("ev") - 1))
        values["event_id"] = _flip("ev", position, bit)
        assume("\x00" not in values["event_id"])
    elif field == "fee":
        values["fee_micro"] = item["feeMicro"] ^ (1 << data.draw(st.integers(0, 40)))
    else:
        values["at"] = AT + timedelta(microseconds=1 << data.draw(st.integers(0, 19)))
    with world.sessions() as s:
        s.execute(update(UsageEvent).where(UsageEvent.event_id.in_(["ev"])).values(**values))
        s.commit()
    try:
        items = _events_of(world, a, entry["cursor"])
        for x in items:
            assert _digest(x) == x["digest"]  # the registry digests what it serves
        pairs = [(x["digest"], x["amountMicro"]) for x in items]
        assert _entry_digest(pairs) != entry["digest"]
        with world.sessions() as s:
            logged = s.scalar(
                select(LedgerEntry.digest).where(LedgerEntry.id == int(entry["cursor"]))
            )
        assert logged == entry["digest"]
    finally:
        with world.sessions() as s:
            key = values.get("event_id", "ev")
            s.execute(
                update(UsageEvent)
                .where(UsageEvent.event_id == key)
                .values(
                    event_id="ev",
                    attributions=stored,
                    fee_micro=item["feeMicro"],
                    at=AT,
                )
            )
            s.commit()


def test_demo_evidence_spans_hash_to_the_demo_files(db_url: str, tmp_path: Path) -> None:
    """seed-demo draws exact-match spans and retrieval chunks from the contributions' real
    bytes (in the registry's blob store); the contributor checks them against their copy."""
    now = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    poem = "".join(f"Verse {i}: the river runs below the hill, ünïcode {i}\n" for i in range(400))
    files = {
        "poem.txt": poem.encode(),
        "data/table.csv": b"id,label\n" + b"".join(b"%d,item %d\n" % (i, i) for i in range(300)),
        "blob.bin": bytes((i * 7) % 256 for i in range(5000)),
    }
    with usage_world(db_url, tmp_path, contributors=1, per_contributor=1) as world:
        a = world.contributors[0]
        (cid,) = world.ids_of(a)
        store = FileBlobStore(tmp_path / "blobs")
        try:
            with world.sessions() as s:
                shas = add_files(s, cid, files, store)
                s.execute(update(Contribution).values(updated_at=now - timedelta(days=30)))
                s.commit()
        finally:
            store.close()
        local = {shas[p]: data for p, data in files.items()}
        report = seed_demo(world.sessions, days=30, now=now, blobs_dir=tmp_path / "blobs")
        assert report.accepted > 100 and report.rejected == 0
        seen: dict[str, int] = {"exact": 0, "chunk": 0, "file": 0, "influence": 0}
        for entry in _entries(world, a):
            for item in _events_of(world, a, entry["cursor"]):
                assert _digest(item) == item["digest"]
                ev = item["evidence"]
                if entry["method"] == "influence":
                    assert ev is None
                    seen["influence"] += 1
                    continue
                assert ev is not None, item
                data = local[ev["fileSha256"]]
                if ev["offset"] is None:
                    assert entry["method"] == "retrieval"
                    seen["file"] += 1
                    continue
                span = data[ev["offset"] : ev["offset"] + ev["length"]]
                assert len(span) == ev["length"] and _sha(span) == ev["spanSha256"]
                if entry["method"] == "exact-match":
                    seen["exact"] += 1
                    if ev["excerpt"] is not None:
                        assert ev["excerpt"] == span.decode("utf-8")
                else:
                    seen["chunk"] += 1
        assert all(n > 0 for n in seen.values()), seen
        # The same demo without the blob store: the event stream is unchanged.
        again = seed_demo(world.sessions, days=30, now=now)
        assert again.accepted == 0 and again.duplicates == report.accepted
