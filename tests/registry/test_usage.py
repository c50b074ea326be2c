"""POST /v1/usage and /v1/models: idempotency, per-event validation, roles, limits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import sessionmaker

from app.signing.rotation import build_rotation
from registry.db.models import STATE_SUBMITTED
from registry.db.session import make_engine
from registry.db.usage_models import LedgerEntry, UsageEvent
from registry.ledger import ledger_totals
from registry.settlement import settle_pending
from tests.registry.conftest import fresh_pg_database
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.usage_data import UsageWorld, add_contributions, event, settle, usage_world


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(db_url, tmp_path, operators=2) as w:
        yield w


def _codes(body: dict[str, object], event_id: str) -> set[str]:
    for r in body["rejected"]:  # type: ignore[attr-defined]
        if r["eventId"] == event_id:
            return {x["code"] for x in r["reasons"]}
    raise AssertionError(f"{event_id} not rejected: {body}")


def test_batch_is_ingested_and_split_exactly(world: UsageWorld) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a), world.ids_of(b)
    r = world.post_usage(
        [
            event("e1", "test-model", [(ca[0], 2, "influence"), (cb[0], 1, "retrieval")],
                  fee_micro=1_000_001),
            event("e2", "test-model", [(ca[1], 0.3, "exact-match")], fee_micro=10),
        ],
        settle=False,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": ["e1", "e2"], "duplicates": [], "rejected": []}
    status = world.settle()
    assert status["unsettledEvents"] == 0 and status["settledThrough"]["sequence"] == 2
    with world.sessions() as s:
        entries = s.execute(
            select(LedgerEntry.event_id, LedgerEntry.kind, LedgerEntry.contribution_id,
                   LedgerEntry.amount_micro, LedgerEntry.events).order_by(LedgerEntry.id)
        ).all()  # fmt: skip
        # e1: pool = floor(1_000_001 * 0.7) = 700_000 split 2:1; e2: floor(10 * 0.7) = 7.
        # One settlement ("s2": through usage-log position 2), one entry per contribution,
        # model, method and day; the protocol gets the rest of both fees in one entry.
        assert {tuple(e) for e in entries[:3]} == {
            ("s2", "contributor", ca[0], 466_667, 1),
            ("s2", "contributor", cb[0], 233_333, 1),
            ("s2", "contributor", ca[1], 7, 1),
        }
        assert tuple(entries[3]) == (None, "protocol", None, 300_001 + 3, None)
        totals = ledger_totals(s)
    assert totals.ledger_micro == totals.fees_micro == 1_000_011
    # The per-event split stays readable through the entry.
    page = world.client.get("/v1/me/rewards", headers=a.headers).json()
    got = {}
    for item in page["items"]:
        r = world.client.get(f"/v1/me/rewards/{item['cursor']}/events", headers=a.headers)
        assert r.status_code == 200, r.text
        got.update(
            {(x["eventId"], item["contributionId"]): x["amountMicro"] for x in r.json()["items"]}
        )
    assert got == {("e1", ca[0]): 466_667, ("e2", ca[1]): 7}
    # Not b's to read.
    first = page["items"][0]["cursor"]
    assert world.client.get(f"/v1/me/rewards/{first}/events", headers=b.headers).status_code == 404


def test_intake_answers_before_settlement_and_reads_say_so(db_url: str, tmp_path: Path) -> None:
    """Without a settler (as when `contributor-registry settle` runs elsewhere), an accepted
    batch is durable in the usage log, the ledger and the series show nothing yet, and the
    reads count the events awaiting settlement."""
    with usage_world(db_url, tmp_path, settle_in_process=False) as world:
        a = world.contributors[0]
        c = world.ids_of(a)[0]
        batch = [event(f"u{i}", "test-model", [(c, 1, "influence")]) for i in range(5)]
        assert len(world.post_usage(batch, settle=False).json()["accepted"]) == 5
        page = world.client.get("/v1/me/rewards", headers=a.headers).json()
        assert page["items"] == [] and page["unsettledEvents"] == 5
        assert page["settledThrough"] == {"sequence": 0, "at": None}
        usage = world.client.get(f"/v1/contributions/{c}/usage", headers=a.headers).json()
        assert usage["totals"]["events"] == 0 and usage["unsettledEvents"] == 5
        with world.sessions() as s:
            assert ledger_totals(s).events == 0
        assert settle_pending(world.sessions, share_ppm=700_000) == 5
        page = world.client.get("/v1/me/rewards", headers=a.headers).json()
        assert page["unsettledEvents"] == 0 and page["settledThrough"]["sequence"] == 5
        assert sum(i["amountMicro"] for i in page["items"]) == 5 * 700_000
        usage = world.client.get(f"/v1/contributions/{c}/usage", headers=a.headers).json()
        assert usage["totals"] == {"events": 5, "rewardMicro": 5 * 700_000}


def test_resent_events_are_duplicates_and_change_nothing(world: UsageWorld) -> None:
    c = world.ids_of(world.contributors[0])[0]
    batch = [event(f"e{i}", "test-model", [(c, 1, "influence")], fee_micro=99) for i in range(5)]
    assert world.post_usage(batch).json()["accepted"] == [f"e{i}" for i in range(5)]
    with world.sessions() as s:
        before = ledger_totals(s)
    changed = [dict(e, feeMicro=10**9) for e in batch]  # same ids, different content
    again = world.post_usage([*changed, event("e9", "test-model", [(c, 1, "retrieval")])])
    assert again.json() == {
        "accepted": ["e9"],
        "duplicates": [f"e{i}" for i in range(5)],
        "rejected": [],
    }
    with world.sessions() as s:
        after = ledger_totals(s)
    assert after.fees_micro == before.fees_micro + 1_000_000
    assert after.events == before.events + 1


def test_repeated_id_within_one_batch_is_a_duplicate(world: UsageWorld) -> None:
    c = world.ids_of(world.contributors[0])[0]
    e = event("same", "test-model", [(c, 1, "influence")])
    assert world.post_usage([e, e]).json() == {
        "accepted": ["same"],
        "duplicates": ["same"],
        "rejected": [],
    }


def test_invalid_events_are_rejected_with_reasons_valid_ones_kept(world: UsageWorld) -> None:
    a = world.contributors[0]
    c = world.ids_of(a)
    with world.sessions() as s:
        pending = add_contributions(s, a.fingerprint, 1, state=STATE_SUBMITTED)[0]
    future = datetime.now(UTC) + timedelta(days=1)
    batch = [
        event("ok", "test-model", [(c[0], 1, "influence")]),
        event("neg-weight", "test-model", [(c[0], -1, "influence"), (c[1], 1, "retrieval")]),
        event("zero", "test-model", [(c[0], 0, "influence"), (c[1], 0.0, "retrieval")]),
        event("unknown-c", "test-model", [("c_nope", 1, "influence")]),
        event("pending", "test-model", [(pending, 1, "influence")]),
        event("no-model", "nope", [(c[0], 1, "influence")]),
        event("method", "test-model", [(c[0], 1, "vibes")]),
        event("fee", "test-model", [(c[0], 1, "influence")], fee_micro=-1),
        event("empty", "test-model", []),
        event("dup-attr", "test-model", [(c[0], 1, "influence"), (c[0], 2, "influence")]),
        event("future", "test-model", [(c[0], 1, "influence")], at=future),
        event("naive", "test-model", [(c[0], 1, "influence")], at="2026-11-01T10:00:00"),
        event("x" * 129, "test-model", [(c[0], 1, "influence")]),
    ]
    r = world.post_usage(batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == ["ok"]
    assert body["duplicates"] == []
    assert len(body["rejected"]) == len(batch) - 1
    assert _codes(body, "neg-weight") == {"negative_weight"}
    assert _codes(body, "zero") == {"weights_all_zero"}
    assert _codes(body, "unknown-c") == {"unknown_contribution"}
    assert _codes(body, "pending") == {"contribution_not_accepted"}
    assert _codes(body, "no-model") == {"unknown_model"}
    assert _codes(body, "method") == {"unknown_method"}
    assert _codes(body, "fee") == {"negative_fee"}
    assert _codes(body, "empty") == {"no_attributions"}
    assert _codes(body, "dup-attr") == {"duplicate_attribution"}
    assert _codes(body, "future") == {"time_in_future"}
    assert _codes(body, "naive") == {"invalid_time"}
    assert _codes(body, "x" * 129) == {"invalid_event_id"}
    reasons = next(x for x in body["rejected"] if x["eventId"] == "neg-weight")["reasons"]
    assert reasons[0]["path"] == "attributions[0].weight"
    with world.sessions() as s:
        assert s.scalar(select(func.count()).select_from(UsageEvent)) == 1
        (stored,) = s.scalars(select(UsageEvent)).all()
        assert stored.attribution_list() == [(c[0], 1_000_000, "influence")]


def test_malformed_body_is_refused_whole(world: UsageWorld) -> None:
    r = world.client.post(
        "/v1/usage", json={"events": [{"eventId": "x"}]}, headers=world.operator.headers
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


def test_batch_over_the_limit_is_413(db_url: str, tmp_path: Path) -> None:
    with usage_world(db_url, tmp_path, contributors=1, usage_batch_max=3) as w:
        c = w.ids_of(w.contributors[0])[0]
        batch = [event(f"e{i}", "test-model", [(c, 1, "influence")]) for i in range(4)]
        r = w.post_usage(batch)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "batch_too_large"
        assert w.post_usage(batch[:3]).json()["accepted"] == ["e0", "e1", "e2"]


def test_only_operators_post_usage_and_models(world: UsageWorld) -> None:
    a = world.contributors[0]
    c = world.ids_of(a)[0]
    r = world.post_usage([event("e", "test-model", [(c, 1, "influence")])], who=a)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    r = world.client.post("/v1/models", json={"id": "mine", "name": "x"}, headers=a.headers)
    assert r.status_code == 403
    assert world.client.post("/v1/usage", json={"events": []}).status_code == 401
    assert world.client.post("/v1/models", json={"id": "m", "name": "x"}).status_code == 401


def test_operator_cannot_post_usage_for_another_operators_model(world: UsageWorld) -> None:
    other = world.operators[1]
    c = world.ids_of(world.contributors[0])[0]
    r = world.post_usage([event("e", "test-model", [(c, 1, "influence")])], who=other)
    assert r.json()["rejected"][0]["reasons"][0]["code"] == "model_not_yours"
    r = world.client.post(
        "/v1/models", json={"id": "test-model", "name": "Mine now"}, headers=other.headers
    )
    assert r.status_code == 409


def test_model_registration_is_idempotent_and_listed(world: UsageWorld) -> None:
    op = world.operator
    r = world.client.post(
        "/v1/models", json={"id": "m2", "name": "Two", "description": "d"}, headers=op.headers
    )
    assert r.status_code == 201
    assert r.json()["operator"] == op.fingerprint
    assert r.json()["demo"] is False
    r = world.client.post("/v1/models", json={"id": "m2", "name": "Two!"}, headers=op.headers)
    assert r.status_code == 200
    assert r.json()["name"] == "Two!"
    assert (
        world.client.post(
            "/v1/models", json={"id": "demo-fake", "name": "x"}, headers=op.headers
        ).json()["error"]["code"]
        == "reserved_id"
    )
    assert (
        world.client.post(
            "/v1/models", json={"id": "Bad Id", "name": "x"}, headers=op.headers
        ).status_code
        == 422
    )
    reader = world.contributors[0]
    page = world.client.get("/v1/models?limit=1", headers=reader.headers).json()
    assert [m["id"] for m in page["items"]] == ["m2"]
    assert page["hasMore"] is True
    nxt = world.client.get(f"/v1/models?limit=1&after={page['nextCursor']}", headers=reader.headers)
    assert [m["id"] for m in nxt.json()["items"]] == ["test-model"]
    assert nxt.json()["hasMore"] is False
    assert world.client.get("/v1/models").status_code == 401


def test_ledger_is_append_only_in_the_database(world: UsageWorld) -> None:
    c = world.ids_of(world.contributors[0])[0]
    world.post_usage([event("e", "test-model", [(c, 1, "influence")])])
    with world.sessions() as s:
        for statement in ("UPDATE ledger SET amount_micro = 0", "DELETE FROM ledger"):
            with pytest.raises(Exception, match="append-only"):
                s.execute(text(statement))
            s.rollback()
        assert ledger_totals(s).ledger_micro == 1_000_000


def test_contribution_owner_at_ingestion_gets_the_ledger_entry(world: UsageWorld) -> None:
    stranger = Contributor()
    with world.sessions() as s:
        cid = add_contributions(s, stranger.fingerprint, 1, public_key=stranger.public_key)[0]
    world.post_usage([event("e", "test-model", [(cid, 1, "retrieval")], fee_micro=10)])
    with world.sessions() as s:
        owners = s.scalars(
            select(LedgerEntry.owner_fingerprint).where(LedgerEntry.kind == "contributor")
        ).all()
    assert owners == [stranger.fingerprint]


def test_extreme_values_are_rejected_not_crashing(world: UsageWorld) -> None:
    """Found by schemathesis: huge floats broke the ppm conversion (500)."""
    c = world.ids_of(world.contributors[0])[0]
    batch = [
        event("huge-w", "test-model", [(c, 1.7976931348623157e308, "influence")]),
        event("tiny-neg", "test-model", [(c, -5e-143, "influence"), (c, 1, "retrieval")]),
        event("year-0", "test-model", [(c, 1, "influence")], at="0001-01-01T00:00:00+05:00"),
        event("far", "test-model", [(c, 1, "influence")], at="9999-12-31T23:59:59-05:00"),
        event("rich", "test-model", [(c, 1, "influence")], fee_micro=10**30),
    ]
    r = world.post_usage(batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == []
    assert _codes(body, "huge-w") == {"weight_too_large"}
    assert _codes(body, "tiny-neg") == {"negative_weight"}
    assert _codes(body, "year-0") == {"invalid_time"}
    assert _codes(body, "far") == {"invalid_time"}
    assert _codes(body, "rich") == {"fee_too_large"}


def test_concurrent_resends_store_each_event_once(world: UsageWorld) -> None:
    """Two pipelines posting the same batch at once: every id accepted exactly once, no 5xx."""
    c = world.ids_of(world.contributors[0])
    batch = [event(f"r{i}", "test-model", [(c[i % 3], 1, "influence")]) for i in range(200)]
    answers: list[dict[str, list[str]]] = []

    def post() -> None:
        r = world.post_usage(batch)
        assert r.status_code == 200, r.text
        answers.append(r.json())

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 3
    accepted = [eid for a in answers for eid in a["accepted"]]
    assert sorted(accepted) == sorted(e["eventId"] for e in batch)
    for a in answers:
        assert set(a["accepted"]) | set(a["duplicates"]) == {e["eventId"] for e in batch}
    with world.sessions() as s:
        totals = ledger_totals(s)
    assert totals.events == 200 and totals.ledger_micro == totals.fees_micro == 200_000_000


# Bad input, by class: every typed field of the usage body with every wrong JSON type. A wrong
# type refuses the whole body (422) and stores nothing, the valid event next to it included.
_OK_EVENT = {"eventId": "fine", "modelId": "test-model", "at": "2026-11-26T07:59:58Z",
             "feeMicro": 100, "attributions": []}  # fmt: skip
_WRONG_VALUES: dict[str, tuple[object, ...]] = {
    "feeMicro": ("100", True, False, 1.0, 1.5, None, [], {}),
    "weight": ("1", "0.5", True, None, [], {}),
    "eventId": (1, True, None, 1.5, [], {}),
    "modelId": (1, True, None, []),
    "contributionId": (1, True, None, []),
    "method": (1, True, None, []),
    "at": (1_700_000_000, 1.7e9, "1700000000", "2026-11-26", True, None, []),
    "attributions": ("x", 1, True, {}),
}
_WRONG_TYPES = [(f, v) for f, values in _WRONG_VALUES.items() for v in values]


def _with(field: str, value: object, c: str) -> dict[str, object]:
    attr: dict[str, object] = {"contributionId": c, "weight": 1, "method": "influence"}
    body: dict[str, object] = dict(_OK_EVENT, eventId=f"bad-{field}", attributions=[attr])
    if field in attr:
        attr[field] = value
    else:
        body[field] = value
    return body


def test_wrong_json_types_refuse_the_whole_body(world: UsageWorld) -> None:
    c = world.ids_of(world.contributors[0])[0]
    good = dict(_OK_EVENT, attributions=[{"contributionId": c, "weight": 1, "method": "influence"}])
    answers = {}
    for field, value in _WRONG_TYPES:
        r = world.post_usage([good, _with(field, value, c)])
        answers[(field, repr(value))] = (r.status_code, r.json().get("error", {}).get("code"))
    assert answers == {k: (422, "invalid_request") for k in answers}
    with world.sessions() as s:
        assert s.scalar(select(func.count()).select_from(UsageEvent)) == 0
    assert world.post_usage([good]).json()["accepted"] == ["fine"]


def test_out_of_range_values_are_rejected_per_event(world: UsageWorld) -> None:
    """Right type, wrong value: rejected with a reason, the rest of the batch is stored."""
    c = world.ids_of(world.contributors[0])[0]
    cases: list[tuple[str, object, set[str]]] = [
        ("feeMicro", -1, {"negative_fee"}),
        ("feeMicro", -(10**30), {"negative_fee"}),
        ("feeMicro", 10**15 + 1, {"fee_too_large"}),
        ("feeMicro", 2**63, {"fee_too_large"}),
        ("feeMicro", 10**4000, {"fee_too_large"}),
        ("weight", -1, {"negative_weight"}),
        ("weight", -1e-300, {"negative_weight"}),
        ("weight", 10**6 + 1, {"weight_too_large"}),
        ("weight", 10**400, {"weight_too_large"}),
        ("weight", 1.7976931348623157e308, {"weight_too_large"}),
        ("weight", 0, {"weights_all_zero"}),
        ("eventId", "", {"invalid_event_id"}),
        ("eventId", "x" * 129, {"invalid_event_id"}),
        ("modelId", "x" * 10_000, {"unknown_model"}),
        ("contributionId", "c_" + "x" * 10_000, {"unknown_contribution"}),
        ("method", "x" * 10_000, {"unknown_method"}),
        ("at", "2026-11-26T07:59:58", {"invalid_time"}),
        ("at", "0001-01-01T00:00:00+05:00", {"invalid_time"}),
    ]
    good = dict(_OK_EVENT, attributions=[{"contributionId": c, "weight": 1, "method": "influence"}])
    batch = [good]
    for i, (field, value, _) in enumerate(cases):
        bad = _with(field, value, c)
        if field != "eventId":
            bad["eventId"] = f"case-{i}"
        batch.append(bad)
    r = world.post_usage(batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == ["fine"]
    got = {x["index"]: ({y["code"] for y in x["reasons"]}, x["eventId"]) for x in body["rejected"]}
    assert {i: codes for i, (codes, _) in got.items()} == {
        i + 1: codes for i, (_, _, codes) in enumerate(cases)
    }
    assert all(got[i][1] == batch[i]["eventId"] for i in got)


def test_nul_in_any_id_stores_nothing_of_it(world: UsageWorld) -> None:
    """NUL cannot be stored on PostgreSQL: the event is rejected, or the body refused whole
    (the HTTP layer may refuse NUL in any JSON string); never a 500, never stored."""
    c = world.ids_of(world.contributors[0])[0]
    good = event("ok", "test-model", [(c, 1, "influence")])
    for field in ("eventId", "modelId", "contributionId", "method"):
        bad = dict(_with(field, "a\x00b", c), eventId=f"nul-{field}")
        if field == "eventId":
            bad["eventId"] = "nul\x00id"
        r = world.post_usage([good, bad])
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            assert bad["eventId"] not in r.json()["accepted"]
            assert r.json()["rejected"][0]["index"] == 1
    with world.sessions() as s:
        ids = s.scalars(select(UsageEvent.event_id)).all()
    assert set(ids) <= {"ok"}


def test_ids_that_cannot_be_echoed_are_rejected_and_the_answer_is_sent(world: UsageWorld) -> None:
    """A lone surrogate is valid JSON (\\udc80) but not UTF-8: such ids are rejected per event,
    echoed escaped, and the answer never fails after the batch was stored (nor on retry)."""
    c = world.ids_of(world.contributors[0])[0]
    events = [
        event("ok", "test-model", [(c, 1, "influence")], fee_micro=10),
        event("@bad-id@", "test-model", [(c, 1, "influence")], fee_micro=10),
        event("m", "@bad-model@", [("@bad-c@", 1, "@bad-method@")], fee_micro=10),
    ]
    # JSON escapes of lone surrogates (json.dumps cannot write them from a str of ours here).
    body = (
        json.dumps({"events": events})
        .replace("@bad-id@", "bad\\udc80id")
        .replace("@bad-model@", "\\ud800")
        .replace("@bad-c@", "c_\\udfff")
        .replace("@bad-method@", "influ\\udc00ence")
    )
    for attempt in range(2):
        r = world.client.post(
            "/v1/usage",
            content=body.encode(),
            headers={**world.operator.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["accepted" if attempt == 0 else "duplicates"] == ["ok"]
        rejected = {x["index"]: x for x in answer["rejected"]}
        assert rejected[1]["eventId"] == "bad\\udc80id"
        assert {y["code"] for y in rejected[1]["reasons"]} == {"invalid_event_id"}
        assert {y["code"] for y in rejected[2]["reasons"]} == {
            "unknown_model",
            "unknown_contribution",
            "unknown_method",
        }
    with world.sessions() as s:
        assert s.scalars(select(UsageEvent.event_id)).all() == ["ok"]


def test_an_operator_cannot_attribute_to_its_own_contributions(world: UsageWorld) -> None:
    """Self-dealing is refused: usage of a contribution owned by the operator's own key earns
    nothing, also when the event names other contributions too."""
    op = world.operator
    other = world.ids_of(world.contributors[0])[0]
    with world.sessions() as s:
        mine = add_contributions(s, op.fingerprint, 1)[0]
    r = world.post_usage(
        [
            event("self", "test-model", [(mine, 1, "influence")], fee_micro=10**15),
            event("mixed", "test-model", [(other, 1, "influence"), (mine, 1, "retrieval")]),
            event("fair", "test-model", [(other, 1, "influence")]),
        ]
    )
    body = r.json()
    assert body["accepted"] == ["fair"]
    assert _codes(body, "self") == {"self_attribution"}
    assert _codes(body, "mixed") == {"self_attribution"}
    reasons = next(x for x in body["rejected"] if x["eventId"] == "mixed")["reasons"]
    assert reasons[0]["path"] == "attributions[1].contributionId"
    with world.sessions() as s:
        owners = set(s.scalars(select(LedgerEntry.owner_fingerprint)).all())
    assert op.fingerprint not in owners


@pytest.mark.postgres
@pytest.mark.slow
def test_overlapping_batches_from_many_clients_never_fail(pg_url: str, tmp_path: Path) -> None:
    """Many pipelines post overlapping batches at once to a real registry on PostgreSQL: every
    answer is 200, every event id is accepted exactly once, every other sending of it is a
    duplicate, and the ledger matches the stored fees."""
    db_url = fresh_pg_database(pg_url)
    operator = Contributor()
    engine = make_engine(db_url)
    try:
        with sessionmaker(engine)() as s:
            cids = add_contributions(s, Contributor().fingerprint, 4)
    finally:
        engine.dispose()
    threads, rounds, size, span = 6, 12, 120, 200
    server = RegistryProcess(
        db_url,
        tmp_path / "blobs",
        extra_args=("--operator-key", operator.public_key, "--rate-limit", "0"),
    )
    with server, httpx.Client(base_url=server.base_url, timeout=60) as http:
        operator.sign_in(cast(Any, http))
        model = {"id": "test-model", "name": "T"}
        r = http.post("/v1/models", json=model, headers=operator.headers)
        assert r.status_code == 201, r.text
        barrier = threading.Barrier(threads)
        sent: list[list[str]] = []
        answers: list[tuple[int, dict[str, list[str]] | str]] = []
        lock = threading.Lock()

        def pipeline(t: int) -> None:
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                for rnd in range(rounds):
                    # Each round's ids come from one window; every id is in several batches.
                    ids = [f"r{rnd}-{(t * 37 + k * 7) % span}" for k in range(size)]
                    batch = [
                        event(i, "test-model", [(cids[k % 4], 1, "influence")], fee_micro=1000)
                        for k, i in enumerate(ids)
                    ]
                    barrier.wait()
                    resp = client.post(
                        "/v1/usage", json={"events": batch}, headers=operator.headers
                    )
                    body = resp.json() if resp.status_code == 200 else resp.text
                    with lock:
                        sent.append(ids)
                        answers.append((resp.status_code, body))

        workers = [threading.Thread(target=pipeline, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        settle(http, operator.headers)
    assert [a for a in answers if a[0] != 200] == []
    accepted: list[str] = []
    duplicates = 0
    for ids, (_, body) in zip(sent, answers, strict=True):
        assert isinstance(body, dict) and body["rejected"] == []
        assert sorted(body["accepted"] + body["duplicates"]) == sorted(ids)
        accepted += body["accepted"]
        duplicates += len(body["duplicates"])
    unique = {i for ids in sent for i in ids}
    assert sorted(accepted) == sorted(unique)  # each id accepted exactly once
    assert duplicates == sum(len(ids) for ids in sent) - len(unique)
    engine = make_engine(db_url)
    try:
        with sessionmaker(engine)() as s:
            totals = ledger_totals(s)
    finally:
        engine.dispose()
    assert totals.events == len(unique)
    assert totals.ledger_micro == totals.fees_micro == 1000 * len(unique)


def test_contributions_rotated_into_the_operator_key_are_its_own(world: UsageWorld) -> None:
    """A contributor key rotated into the operator's key hands its contributions over: from
    then on they are the operator's own and cannot earn from its usage."""
    a = world.contributors[0]
    ca = world.ids_of(a)[0]
    assert world.post_usage([event("before", "test-model", [(ca, 1, "influence")])]).json()[
        "accepted"
    ] == ["before"]
    envelope = build_rotation(a.key, world.operator.key).to_dict()
    r = world.client.post("/v1/keys/rotate", json={"envelope": envelope}, headers=a.headers)
    assert r.status_code == 200, r.text
    body = world.post_usage([event("after", "test-model", [(ca, 1, "influence")])]).json()
    assert body["accepted"] == []
    assert _codes(body, "after") == {"self_attribution"}
