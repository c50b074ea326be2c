"""POST /v1/usage and /v1/models: idempotency, per-event validation, roles, limits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from registry.db.models import STATE_SUBMITTED
from registry.db.usage_models import LedgerEntry, UsageEvent
from registry.ledger import ledger_totals
from tests.support.registry_actors import Contributor
from tests.support.usage_data import UsageWorld, add_contributions, event, usage_world


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
        ]
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": ["e1", "e2"], "duplicates": [], "rejected": []}
    with world.sessions() as s:
        entries = s.execute(
            select(LedgerEntry.event_id, LedgerEntry.kind, LedgerEntry.contribution_id,
                   LedgerEntry.amount_micro).order_by(LedgerEntry.id)
        ).all()  # fmt: skip
        # e1: pool = floor(1_000_001 * 0.7) = 700_000 split 2:1; e2: floor(10 * 0.7) = 7.
        # The protocol gets the rest of both fees in one entry for the model and batch.
        assert [tuple(e) for e in entries] == [
            ("e1", "contributor", ca[0], 466_667),
            ("e1", "contributor", cb[0], 233_333),
            ("e2", "contributor", ca[1], 7),
            (None, "protocol", None, 300_001 + 3),
        ]
        totals = ledger_totals(s)
    assert totals.ledger_micro == totals.fees_micro == 1_000_011


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
        event("nul\x00id", "test-model", [("c\x00", 1, "influence")]),
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
    assert _codes(body, "nul\x00id") == {"invalid_event_id", "unknown_contribution"}
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
