"""Attribution evidence on crafted event pages (the registry side is tested against a real
registry in tests/integration/test_evidence.py): digests recomputed, failures detected with
nothing stored changed, the fetch bounded per sync and resumed, and each status of the check
against the local files."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select

from app.domain.rewards import PPM, split_integers
from app.registry_client.api import RegistryClient
from app.services.catalogue import CatalogueService, ImportRequest
from app.services.context import ServiceContext
from app.services.evidence import (
    EvidenceFailed,
    EvidenceSync,
    entry_digest,
    event_digest,
)
from app.services.evidence_check import Status
from app.store.evidence_models import EvidenceEvent, EvidenceFetch
from app.store.models import Item
from app.store.rewards_models import RewardRecord, ensure_scope, scope_id
from app.store.tlog_models import LogFailure, LogProof

REG = "example.org/log+12345678+AAAA"
OWNER = "f" * 64
CID = "c_evidence"
SHARE = 700_000
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EVIDENCE_FIELDS = ("fileSha256", "offset", "length", "spanSha256", "excerpt")
TEXT = b"alpha line\nbravo line\ncharlie has the span here\ndelta\n"


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@dataclass
class Pages:
    """A crafted events endpoint: per entry, its events; answers `after`/`limit` pages."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    asked: list[tuple[str, str | None, int]] = field(default_factory=list)

    @property
    def http(self) -> Pages:
        return self

    def json(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        cursor = path.split("/")[4]
        self.asked.append((cursor, params.get("after"), params["limit"]))
        after = int(params.get("after", -1))
        rest = [e for e in self.events[cursor] if e["sequence"] > after]
        page = rest[: params["limit"]]
        more = len(rest) > len(page)
        return {
            "entry": self.entries[cursor],
            "items": page,
            "nextCursor": str(page[-1]["sequence"]) if more else None,
            "hasMore": more,
        }


def _event(
    seq: int, evidence: dict[str, Any] | None, method: str, fee: int = 10_000
) -> dict[str, Any]:
    mine: list[Any] = [CID, 600_000, method] + ([evidence] if evidence else [])
    attrs = json.dumps([mine, ["c_other", 400_000, "influence"]], separators=(",", ":"))
    at = T0 + timedelta(minutes=seq)
    amount = split_integers(fee * SHARE // PPM, [600_000, 400_000])[0]
    return {
        "sequence": seq,
        "eventId": f"ev-{seq}",
        "modelId": "m1",
        "at": at.isoformat().replace("+00:00", "Z"),
        "feeMicro": fee,
        "weightPpm": 600_000,
        "amountMicro": amount,
        "digest": event_digest(f"ev-{seq}", "m1", at, fee, attrs),
        "attributionsJson": attrs,
        # As the registry reports it: the fields not given are null.
        "evidence": None if evidence is None else {**dict.fromkeys(EVIDENCE_FIELDS), **evidence},
    }


def _span(data: bytes, offset: int, length: int) -> dict[str, Any]:
    return {
        "fileSha256": _sha(data),
        "length": length,
        "offset": offset,
        "spanSha256": _sha(data[offset : offset + length]),
    }


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[ServiceContext, Path]]:
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(TEXT)
    (folder / "other.txt").write_bytes(b"x" * 100)
    ctx = ServiceContext(tmp_path / "data", "http://127.0.0.1:9")
    summary = CatalogueService(ctx).add(ImportRequest(paths=[folder], title="mine"))
    with ctx.db.session() as s:
        item = s.get(Item, summary.id)
        assert item is not None
        item.registry_id = CID
        item.registry_url = "http://127.0.0.1:9"
        s.commit()
    yield ctx, folder
    ctx.close()


def _entry(
    ctx: ServiceContext, pages: Pages, cursor: str, method: str, events: list[dict[str, Any]]
) -> None:
    """A verified ledger entry (its log leaf commits to the events' digest) and its events."""
    amount = sum(e["amountMicro"] for e in events)
    digest = entry_digest([(e["digest"], e["amountMicro"]) for e in events])
    leaf = {"usageDigest": digest, "events": len(events), "sharePpm": SHARE}
    with ctx.db.session() as s:
        scope = ensure_scope(s, REG, OWNER)
        s.add(
            RewardRecord(
                scope=scope, cursor=cursor, event_id=f"s{cursor}",
                contribution_id=CID, model_id="m1", method=method, amount_micro=amount,
                at=T0, demo=False,
            )
        )  # fmt: skip
        s.add(
            LogProof(
                scope=scope, cursor=cursor, leaf_index=int(cursor),
                tree_size=100, leaf=json.dumps(leaf).encode(), proof=b"",
            )
        )  # fmt: skip
        s.commit()
    pages.entries[cursor] = {
        "cursor": cursor, "contributionId": CID, "modelId": "m1", "method": method,
        "amountMicro": amount, "events": len(events), "digest": digest,
    }  # fmt: skip
    pages.events[cursor] = events


def _sync(ctx: ServiceContext, pages: Pages, **kw: Any) -> Any:
    client = cast(RegistryClient, pages)
    return EvidenceSync(ctx, client, REG, OWNER, has_log=True, **kw).run()


def _stored(ctx: ServiceContext) -> list[tuple[int, str, bool, int]]:
    with ctx.db.session() as s:
        return [
            (e.sequence, e.status, e.confirmed, e.amount_micro)
            for e in s.scalars(select(EvidenceEvent).order_by(EvidenceEvent.sequence))
        ]


def _failures(ctx: ServiceContext) -> list[str]:
    with ctx.db.session() as s:
        return [f.what for f in s.scalars(select(LogFailure))]


def test_each_status_of_the_check_against_the_local_files(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, folder = desk
    pages = Pages()
    other = b"x" * 100
    wrong = {**_span(TEXT, 11, 10), "spanSha256": _sha(b"not these bytes")}
    _entry(ctx, pages, "1", "exact-match", [
        _event(1, _span(TEXT, 22, 26), "exact-match"),
        _event(2, wrong, "exact-match"),
        _event(3, _span(TEXT, len(TEXT) - 4, 10), "exact-match"),  # past the end of the file
        _event(4, _span(b"a file that is not in it", 0, 4), "exact-match"),
        _event(5, _span(other, 10, 5), "exact-match"),
    ])  # fmt: skip
    _entry(ctx, pages, "2", "influence", [_event(6, None, "influence")])
    _entry(ctx, pages, "3", "retrieval", [_event(7, {"fileSha256": _sha(TEXT)}, "retrieval")])
    (folder / "other.txt").unlink()
    report = _sync(ctx, pages)
    assert report.entries_confirmed == 3 and report.entries_left == 0
    assert [(q, st) for q, st, ok, _a in _stored(ctx) if ok] == [
        (1, Status.VERIFIED),
        (2, Status.SPAN_MISMATCH),
        (3, Status.SPAN_MISMATCH),
        (4, Status.NOT_IN_CONTRIBUTION),
        (5, Status.MISSING),
        (6, Status.ASSERTED),
        (7, Status.VERIFIED),
    ]
    assert _failures(ctx) == []


def test_a_changed_local_file_is_your_copy_changed_not_a_mismatch(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, folder = desk
    pages = Pages()
    _entry(ctx, pages, "1", "exact-match", [_event(1, _span(TEXT, 22, 26), "exact-match")])
    path = folder / "notes.txt"
    st = path.stat()
    # Same size and mtime (the fast path would trust it): only the whole-file hash tells.
    path.write_bytes(TEXT.replace(b"charlie", b"CHARLIE"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    _sync(ctx, pages)
    assert [st for _q, st, _ok, _a in _stored(ctx)] == [Status.CHANGED]


def test_a_tampered_attributions_json_fails_and_stores_nothing(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, _ = desk
    pages = Pages()
    span = _span(TEXT, 22, 26)
    good = _event(1, span, "exact-match")
    _entry(ctx, pages, "1", "exact-match", [good, _event(2, None, "exact-match")])
    forged = {**_span(TEXT, 0, 5)}
    pages.events["1"][0] = {
        **good,
        "attributionsJson": good["attributionsJson"].replace(
            json.dumps(span, separators=(",", ":")),
            json.dumps(forged, separators=(",", ":")),
        ),
        "evidence": forged,
    }
    with pytest.raises(EvidenceFailed, match="do not hash to the digest"):
        _sync(ctx, pages)
    assert _stored(ctx) == [] and _failures(ctx) == ["evidence"]


def test_a_tampered_amount_fails_and_what_was_stored_stays(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, _ = desk
    pages = Pages()
    events = [_event(i, _span(TEXT, i, 3), "exact-match") for i in range(1, 6)]
    _entry(ctx, pages, "1", "exact-match", events)
    _sync(ctx, pages, max_events=2)  # two events stored, the entry not complete yet
    before = _stored(ctx)
    assert [(q, ok) for q, _s, ok, _a in before] == [(1, False), (2, False)]
    pages.events["1"][3] = {**events[3], "amountMicro": events[3]["amountMicro"] + 1}
    with pytest.raises(EvidenceFailed, match="the split of its fee gives"):
        _sync(ctx, pages)
    assert _stored(ctx) == before and _failures(ctx) == ["evidence"]


def test_events_that_do_not_add_up_to_the_committed_digest_fail_at_the_end(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, _ = desk
    pages = Pages()
    events = [_event(i, None, "influence") for i in range(1, 4)]
    _entry(ctx, pages, "1", "influence", events)
    pages.events["1"] = events[:2] + [_event(9, None, "influence")]  # one event swapped
    _sync(ctx, pages, max_events=2)  # the first two, not confirmed yet
    with pytest.raises(EvidenceFailed, match="do not hash to the digest the entry commits"):
        _sync(ctx, pages)
    # The pages before stay as they were, unconfirmed; nothing of the last page is stored.
    assert [(q, ok) for q, _s, ok, _a in _stored(ctx)] == [(1, False), (2, False)]
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).where(EvidenceFetch.complete.is_(True))) == 0


def test_the_fetch_is_bounded_per_sync_and_resumes_where_it_stopped(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, _ = desk
    pages = Pages()
    _entry(ctx, pages, "1", "influence", [_event(i, None, "influence") for i in range(1, 6)])
    _entry(ctx, pages, "2", "influence", [_event(i, None, "influence") for i in range(6, 9)])
    first = _sync(ctx, pages, max_events=3)
    assert (first.events, first.entries_confirmed, first.entries_left) == (3, 0, 2)
    second = _sync(ctx, pages, max_events=3)
    assert (second.events, second.entries_confirmed, second.entries_left) == (3, 1, 1)
    third = _sync(ctx, pages, max_events=3)
    assert (third.events, third.entries_confirmed, third.entries_left) == (2, 1, 0)
    assert [q for q, _s, ok, _a in _stored(ctx) if ok] == list(range(1, 9))
    # Each event was asked for once: every sync continued after the last stored position.
    assert pages.asked == [
        ("1", None, 3), ("1", "3", 3), ("2", None, 1), ("2", "6", 3),
    ]  # fmt: skip
    fourth = _sync(ctx, pages, max_events=3)
    assert (fourth.events, fourth.entries_left) == (0, 0) and len(pages.asked) == 4


def test_only_entries_the_log_verified_are_read(desk: tuple[ServiceContext, Path]) -> None:
    ctx, _ = desk
    pages = Pages()
    _entry(ctx, pages, "1", "influence", [_event(1, None, "influence")])
    with ctx.db.session() as s:
        s.delete(s.get(LogProof, (scope_id(s, REG, OWNER), "1")))
        s.commit()
    assert _sync(ctx, pages).events == 0 and pages.asked == []


def test_a_registry_without_attributions_in_its_events_is_skipped_quietly(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, _ = desk
    pages = Pages()
    _entry(ctx, pages, "1", "influence", [_event(1, None, "influence")])
    pages.events["1"] = [
        {k: v for k, v in e.items() if k not in ("attributionsJson", "modelId", "evidence")}
        for e in pages.events["1"]
    ]
    report = _sync(ctx, pages)
    assert report.unsupported and report.events == 0
    assert _stored(ctx) == [] and _failures(ctx) == []


def test_the_time_budget_stops_a_sync_and_the_next_one_continues(
    desk: tuple[ServiceContext, Path],
) -> None:
    ctx, _ = desk
    pages = Pages()
    _entry(ctx, pages, "1", "influence", [_event(1, None, "influence")])
    first = _sync(ctx, pages, max_seconds=0)
    assert (first.events, first.entries_left) == (0, 1) and pages.asked == []
    second = _sync(ctx, pages)
    assert (second.events, second.entries_confirmed, second.entries_left) == (1, 1, 0)


def test_migration_0008_goes_down_and_up(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from app.store.db import Database, _alembic_config

    db = Database(tmp_path)
    assert {"evidence_events", "evidence_fetch"} <= set(inspect(db.engine).get_table_names())
    command.downgrade(_alembic_config(db.engine), "0007")
    assert "evidence_events" not in inspect(db.engine).get_table_names()
    command.upgrade(_alembic_config(db.engine), "head")
    assert {"evidence_events", "evidence_fetch"} <= set(inspect(db.engine).get_table_names())
    db.dispose()


def test_line_numbers_of_byte_offsets(tmp_path: Path) -> None:
    from app.services.evidence_review import line_numbers

    path = tmp_path / "t.txt"
    path.write_bytes(TEXT)
    offsets = [0, 5, 10, 11, 22, len(TEXT) - 1, len(TEXT) + 100]
    got = line_numbers(str(path), offsets)
    assert got == {o: TEXT[:o].count(b"\n") + 1 for o in offsets[:-1]}  # past the end: none
    assert line_numbers(str(tmp_path / "gone.txt"), [3]) == {}
