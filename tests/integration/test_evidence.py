"""Attribution evidence end to end, against a real registry process: an operator reports
usage with exact-match, retrieval and influence attributions whose evidence is taken from the
contribution's real bytes; the app fetches the events behind its verified ledger entries,
verifies them and checks every piece of evidence against the local files. A registry whose
stored events were changed behind its back is caught, with nothing stored changed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.services.clients import make_client
from app.services.evidence import EvidenceFailed
from app.services.evidence_check import Status
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync
from app.store.evidence_models import EvidenceEvent
from app.store.tlog_models import LogFailure
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
)
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import post_usage

pytestmark = pytest.mark.slow

POEM = (
    b"The sea is calm tonight.\n"
    b"The tide is full, the moon lies fair\n"
    b"Upon the straits; on the French coast the light\n"
    b"Gleams and is gone; the cliffs of England stand,\n"
    b"Glimmering and vast, out in the tranquil bay.\n"
)
TABLE = b"name,score\nada,3\ngrace,5\n"
NOW = datetime.now(UTC)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _span(data: bytes, needle: bytes, **extra: Any) -> dict[str, Any]:
    offset = data.index(needle)
    return {
        "fileSha256": _sha(data),
        "offset": offset,
        "length": len(needle),
        "spanSha256": _sha(needle),
        **extra,
    }


def _events(tag: str, cid: str, n: int) -> list[dict[str, Any]]:
    """n events, each with an exact-match span of the poem, a retrieval of the table and an
    influence attribution (all three of one contribution)."""
    lines = [ln for ln in POEM.split(b"\n") if ln]
    out = []
    for i in range(n):
        needle = lines[i % len(lines)][4:30]
        out.append(
            {
                "eventId": f"{tag}-{i}",
                "modelId": "sync-model",
                "at": (NOW - timedelta(hours=3 * i + 1)).isoformat(),
                "feeMicro": 10_000 + 13 * i,
                "attributions": [
                    {"contributionId": cid, "weight": 0.5, "method": "exact-match",
                     "evidence": _span(POEM, needle, excerpt=needle.decode())},
                    {"contributionId": cid, "weight": 0.3, "method": "retrieval",
                     "evidence": {"fileSha256": _sha(TABLE)}},
                    {"contributionId": cid, "weight": 0.2, "method": "influence"},
                ],
            }
        )  # fmt: skip
    return out


def _sync(desk: Desk) -> RewardsSync:
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    client = make_client(desk.ctx)
    try:
        sync = RewardsSync(desk.ctx, client, owner.fingerprint)
        sync.run(evidence=True)
        return sync
    finally:
        client.close()


def _evidence_cli(url: str, data_dir: Path, ref: str) -> tuple[int, dict[str, Any]]:
    out = run_cli("--registry", url, "evidence", ref, "--json", data_dir=data_dir)
    assert out.code in (0, 4), out.err
    return out.code, json.loads(out.out)


def _stored(desk: Desk) -> list[tuple[Any, ...]]:
    with desk.ctx.db.session() as s:
        return [
            (e.cursor, e.sequence, e.digest, e.amount_micro, e.attributions_json, e.confirmed)
            for e in s.scalars(select(EvidenceEvent).order_by(EvidenceEvent.sequence))
        ]


@pytest.fixture
def contribution(desk: Desk) -> tuple[int, str]:
    item = desk.add("poems", {"dover.txt": POEM, "scores.csv": TABLE})
    cid = str(desk.submit(item).registry_id)
    desk.queue().run()
    assert desk.state(item) == "accepted"
    return item, cid


def test_evidence_is_fetched_verified_and_checked_against_your_files(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    contribution: tuple[int, str],
    data_dir: Path,
) -> None:
    item, cid = contribution
    post_usage(registry, operator, _events("a", cid, 6))
    sync = _sync(desk)
    assert sync.evidence is not None and sync.evidence.entries_left == 0
    code, view = _evidence_cli(registry.base_url, data_dir, str(item))
    assert code == 0
    assert view["counts"] == {"verified": 12, "operator-asserted": 6}
    assert view["pendingEvents"] == 0 and view["entriesNotYetRead"] == 0
    exact = [e for e in view["events"] if e["method"] == "exact-match"]
    assert len(exact) == 6
    for e in exact:
        line = POEM[: e["offset"]].count(b"\n") + 1
        assert e["line"] == line
        assert e["span"] == POEM[e["offset"] : e["offset"] + e["length"]].decode()
        assert e["excerpt"] == e["span"] and e["statusText"] == "verified against your files"
    assert {e["statusText"] for e in view["events"] if e["method"] == "influence"} == {
        "operator-asserted"
    }
    assert sum(e["amountMicro"] for e in view["events"]) > 0
    # The same contribution by its registry id (a prefix of it), in text.
    out = run_cli("--registry", registry.base_url, "evidence", cid[:-2], data_dir=data_dir)
    assert out.code == 0, out.err
    assert "verified against your files" in out.out and "line " in out.out

    # Your copy changed since submission: the span's bytes are no longer there.
    poem = desk.file("poems", "dover.txt")
    poem.write_bytes(POEM.replace(b"The tide is full", b"The tide was out"))
    code, view = _evidence_cli(registry.base_url, data_dir, str(item))
    assert code == 0
    assert view["counts"] == {"changed": 6, "verified": 6, "operator-asserted": 6}
    assert {e["status"] for e in view["events"] if e["method"] == "exact-match"} == {"changed"}
    with desk.ctx.db.session() as s:  # the new status is stored
        assert {e.status for e in s.scalars(select(EvidenceEvent))} == {
            Status.CHANGED.value,
            Status.VERIFIED.value,
            Status.ASSERTED.value,
        }

    # File not on this computer.
    os.remove(desk.file("poems", "scores.csv"))
    _code, view = _evidence_cli(registry.base_url, data_dir, str(item))
    assert {e["status"] for e in view["events"] if e["method"] == "retrieval"} == {"missing"}
    assert view["events"][0]["statusText"] in {
        "your copy changed since submission",
        "file not on this computer",
        "operator-asserted",
    }


def test_audit_rehashes_the_stored_events_offline(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    contribution: tuple[int, str],
    data_dir: Path,
) -> None:
    _item, cid = contribution
    post_usage(registry, operator, _events("u", cid, 3))
    _sync(desk)
    registry.kill(signal.SIGTERM)  # offline from here
    out = run_cli("audit", "--json", data_dir=data_dir)
    assert out.code == 0, out.err
    audit = json.loads(out.out)["evidence"]
    assert audit["events"] == 9 and audit["entries"] > 0 and audit["problems"] == []
    # The local copy changed behind the app's back: the audit names it.
    with desk.ctx.db.session() as s:
        row = s.scalars(select(EvidenceEvent).where(EvidenceEvent.event_id == "u-1")).first()
        assert row is not None
        row.attributions_json = row.attributions_json.replace('"offset":', '"offset":1')
        s.commit()
    out = run_cli("audit", data_dir=data_dir)
    assert out.code == 4
    assert "event u-1 does not hash to its stored digest" in out.out
    assert "do not hash to the digest its log leaf commits to" not in out.out  # digests kept


def _tamper(tmp_path: Path, sql: str, *params: Any) -> None:
    """Change the registry's stored usage behind its back."""
    con = sqlite3.connect(tmp_path / "registry" / "registry.sqlite3", timeout=30)
    try:
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


@pytest.mark.parametrize(
    "change",
    [
        # The evidence moved to another span (what an operator would claim after the fact).
        ("UPDATE usage_events SET attributions = replace(attributions, '\"offset\":', "
         "'\"offset\":1') WHERE event_id = 'b-1'"),
        # A fee (and so an amount) changed.
        "UPDATE usage_events SET fee_micro = fee_micro + 1000 WHERE event_id = 'b-2'",
    ],
    ids=["attributions", "amount"],
)  # fmt: skip
def test_events_changed_behind_the_log_fail_and_nothing_stored_changes(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    contribution: tuple[int, str],
    tmp_path: Path,
    change: str,
) -> None:
    _item, cid = contribution
    post_usage(registry, operator, _events("a", cid, 3))
    _sync(desk)
    before = _stored(desk)
    assert before and all(row[-1] for row in before)
    post_usage(registry, operator, _events("b", cid, 3))
    _tamper(tmp_path, change)
    with pytest.raises(EvidenceFailed):
        _sync(desk)
    after = _stored(desk)
    assert after[: len(before)] == before
    # The changed event is not confirmed (its page is refused whole, so it is not stored at
    # all); another entry of the batch, of another day when the events straddle midnight, may
    # verify and be confirmed.
    tampered = "b-1" if "b-1" in change else "b-2"
    with desk.ctx.db.session() as s:
        cursors = set(
            s.scalars(select(EvidenceEvent.cursor).where(EvidenceEvent.event_id == tampered))
        )
        assert not any(
            s.scalars(select(EvidenceEvent.confirmed).where(EvidenceEvent.cursor.in_(cursors)))
        )
    assert len(after) < len(before) + 3 * 3  # not every new event was taken
    with desk.ctx.db.session() as s:
        assert [f.what for f in s.scalars(select(LogFailure))] == ["evidence"]


def test_a_false_span_claim_is_named_and_the_command_exits_4(
    desk: Desk,
    registry: RegistryProcess,
    operator: Contributor,
    contribution: tuple[int, str],
    data_dir: Path,
) -> None:
    """The registry checks that a span lies inside the file, not what its bytes are: an
    operator claiming an exact match of bytes the file does not hold at that span is caught
    by the contributor's own copy, and named as a false claim (not as a changed file)."""
    item, cid = contribution
    events = _events("f", cid, 2)
    lie = events[1]["attributions"][0]["evidence"]
    lie["spanSha256"] = _sha(b"words that are not in the poem")
    post_usage(registry, operator, events)
    synced = run_cli("--registry", registry.base_url, "sync", "--json", data_dir=data_dir)
    assert synced.code == 0, synced.err
    evidence = json.loads(synced.out)["evidence"]
    assert evidence["eventsChecked"] == 6 and evidence["entriesLeft"] == 0
    assert evidence["statuses"] == {"verified": 3, "span-mismatch": 1, "operator-asserted": 2}
    code, view = _evidence_cli(registry.base_url, data_dir, str(item))
    assert code == 4 and view["falseClaims"] == 1
    assert view["counts"] == {"verified": 3, "span-mismatch": 1, "operator-asserted": 2}
    [false] = [e for e in view["events"] if e["status"] == "span-mismatch"]
    assert false["eventId"] == "f-1" and "span mismatch" in false["statusText"]
    # The bytes really at that span are shown from the file, beside the claim.
    assert false["span"] == POEM[lie["offset"] : lie["offset"] + lie["length"]].decode()
    text = run_cli("--registry", registry.base_url, "evidence", str(item), data_dir=data_dir)
    assert text.code == 4
    assert "SPAN MISMATCH" in text.out and "1 event carries evidence that is false" in text.out


def test_the_command_on_bad_input_gives_one_clear_error(
    data_dir: Path, isolated_keyring: Path
) -> None:
    no_identity = run_cli("evidence", "1", data_dir=data_dir)
    assert no_identity.code == 3 and "no identity yet" in no_identity.err
    assert run_cli("identity", "init", data_dir=data_dir).code == 0
    for ref, code, text in (
        ("99", 2, "item #99 is not in the catalogue"),
        ("c_nothing", 2, "no contribution 'c_nothing'"),
    ):
        r = run_cli("evidence", ref, data_dir=data_dir)
        assert r.code == code and text in r.err, (r.code, r.err)
        assert "Traceback" not in r.err and r.err.count("error:") == 1
    assert run_cli("evidence", data_dir=data_dir).code == 2  # the ID is required
