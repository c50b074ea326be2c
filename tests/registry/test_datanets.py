"""Datanets: owners, versioned rules, the shared rule table, replay across datanets and rules
versions, the duplicate question (no existence oracle), and the operator's CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.cli import main as registry_main
from tests.registry.conftest import TEST_REGISTRY
from tests.registry.test_contributions import upload
from tests.support.datanet_rule_cases import CASES, CSV, CSV2, RuleCase, sha
from tests.support.registry_actors import Contributor, contribution_body


def make_datanet(
    client: TestClient, who: Contributor, net_id: str, rules: dict[str, Any] | None = None
) -> dict[str, Any]:
    r = client.post(
        "/v1/datanets",
        json={"id": net_id, "name": net_id.title(), "description": "d", "rules": rules or {}},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def set_rules(
    client: TestClient, who: Contributor, net_id: str, rules: dict[str, Any]
) -> dict[str, Any]:
    r = client.patch(f"/v1/datanets/{net_id}", json={"rules": rules}, headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def post(client: TestClient, who: Contributor, files: dict[str, bytes], **kw: Any) -> Any:
    body = contribution_body(who.key, files, registry=TEST_REGISTRY, **kw)
    return client.post("/v1/contributions", json=body, headers=who.headers)


def accepted(client: TestClient, who: Contributor, files: dict[str, bytes], **kw: Any) -> str:
    """A contribution uploaded and finalized; returns its id."""
    r = post(client, who, files, **kw)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    for data in {sha(b): b for b in files.values()}.values():
        upload(client, who, cid, data)
    f = client.post(f"/v1/contributions/{cid}/finalize", headers=who.headers)
    assert f.status_code == 200, f.text
    assert f.json()["state"] == "accepted", f.text
    return str(cid)


def test_any_key_creates_a_datanet_and_owns_it(client: TestClient, alice: Contributor) -> None:
    d = make_datanet(client, alice, "birds", {"formats": ["csv"], "minRecords": 5})
    assert d["owner"] == alice.fingerprint
    assert d["rulesVersion"] == 1
    assert d["rules"]["minRecords"] == 5 and d["rules"]["requiredColumns"] == []
    shown = client.get("/v1/datanets/birds").json()
    assert shown["owner"] == alice.fingerprint and shown["description"] == "d"
    listed = {x["id"]: x for x in client.get("/v1/datanets").json()["items"]}
    assert listed["birds"]["rulesVersion"] == 1 and listed["open-data"]["owner"] is None
    again = client.post("/v1/datanets", json={"id": "birds", "name": "x"}, headers=alice.headers)
    assert again.status_code == 409
    assert client.post("/v1/datanets", json={"id": "nobody", "name": "x"}).status_code == 401


@pytest.mark.parametrize("bad_id", ["ab", "Birds", "-birds", "birds-", "bi rds", "b" * 65])
def test_a_datanet_id_is_checked(client: TestClient, alice: Contributor, bad_id: str) -> None:
    r = client.post("/v1/datanets", json={"id": bad_id, "name": "x"}, headers=alice.headers)
    assert r.status_code == 422


@pytest.mark.parametrize(
    "rules", [{"maxFiles": -1}, {"minRecords": -3}, {"requiredColumns": [""]}, {"kinds": "x"}]
)
def test_unreadable_rules_are_refused(
    client: TestClient, alice: Contributor, rules: dict[str, Any]
) -> None:
    r = client.post(
        "/v1/datanets",
        json={"id": "bad-rules", "name": "x", "rules": rules},
        headers=alice.headers,
    )
    assert r.status_code == 422
    assert client.get("/v1/datanets/bad-rules").status_code == 404


def test_only_the_owner_edits_and_every_rules_change_bumps_the_version(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    make_datanet(client, alice, "birds")
    r = client.patch("/v1/datanets/birds", json={"name": "Mine"}, headers=bob.headers)
    assert r.status_code == 403
    assert client.patch("/v1/datanets/birds", json={"name": "Mine"}).status_code == 401
    assert client.get("/v1/datanets/birds").json()["name"] == "Birds"
    r = client.patch("/v1/datanets/birds", json={"name": "Birds of prey"}, headers=alice.headers)
    assert r.json()["name"] == "Birds of prey" and r.json()["rulesVersion"] == 1
    assert set_rules(client, alice, "birds", {"maxFiles": 3})["rulesVersion"] == 2
    assert set_rules(client, alice, "birds", {"maxFiles": 3})["rulesVersion"] == 2  # same
    assert set_rules(client, alice, "birds", {"maxFiles": 4})["rulesVersion"] == 3
    missing = client.patch("/v1/datanets/nope", json={"name": "x"}, headers=alice.headers)
    assert missing.status_code == 404


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule_case_at_the_registry(
    client: TestClient, alice: Contributor, bob: Contributor, case: RuleCase
) -> None:
    """The table the app's check runs (tests/unit/domain/test_datanet_rules.py)."""
    make_datanet(client, bob, "cases")
    if case.held:
        accepted(client, bob, case.held, datanet="cases")
    version = set_rules(client, bob, "cases", case.rules)["rulesVersion"]
    r = post(
        client,
        alice,
        case.files,
        datanet="cases",
        kind=case.kind,
        license=case.license,
        parts=case.parts,
        rules_version=version,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert {(x["code"], x.get("path")) for x in body["reasons"]} == set(case.expected)
    assert len(body["reasons"]) == len(case.expected)
    assert body["state"] == ("rejected" if case.expected else "submitted")


def test_a_signature_for_another_datanet_is_refused(client: TestClient, alice: Contributor) -> None:
    make_datanet(client, alice, "birds")
    body = contribution_body(alice.key, {"a.csv": CSV}, registry=TEST_REGISTRY, datanet="birds")
    body["metadata"]["datanet"] = "open-data"
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "statement_mismatch"


def test_a_signature_for_another_rules_version_is_refused(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    make_datanet(client, bob, "birds")
    old = contribution_body(
        alice.key, {"a.csv": CSV}, registry=TEST_REGISTRY, datanet="birds", rules_version=1
    )
    unversioned = contribution_body(
        alice.key, {"b.csv": CSV}, registry=TEST_REGISTRY, datanet="birds"
    )
    future = contribution_body(
        alice.key, {"c.csv": CSV}, registry=TEST_REGISTRY, datanet="birds", rules_version=3
    )
    set_rules(client, bob, "birds", {"maxFiles": 10})  # version 2
    for body, signed in ((old, 1), (unversioned, 1), (future, 3)):
        r = client.post("/v1/contributions", json=body, headers=alice.headers)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "rules_version_mismatch"
        assert err["details"] == {"signedRulesVersion": signed, "rulesVersion": 2}
        assert "sign again" in err["message"]
    ok = post(client, alice, {"a.csv": CSV}, datanet="birds", rules_version=2)
    assert ok.status_code == 201 and ok.json()["state"] == "submitted"


def test_a_statement_without_rules_version_is_version_one(
    client: TestClient, alice: Contributor
) -> None:
    """Envelopes signed before rules had versions still go to unchanged datanets."""
    r = post(client, alice, {"a.csv": CSV}, datanet="open-data")
    assert r.status_code == 201 and r.json()["state"] == "submitted"


def test_a_rules_change_after_create_is_judged_by_the_signed_version(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    make_datanet(client, bob, "birds")
    files = {"a.csv": CSV, "b.csv": CSV2}
    r = post(client, alice, files, datanet="birds", rules_version=1)
    cid = r.json()["id"]
    set_rules(client, bob, "birds", {"maxFiles": 1})  # would reject two files
    for data in files.values():
        upload(client, alice, cid, data)
    f = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert f.json()["state"] == "accepted", f.text


def test_held_answers_only_for_accepted_content_of_that_datanet(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    make_datanet(client, bob, "birds")
    make_datanet(client, bob, "fish")
    in_birds, in_fish, pending = b"birds,1\n", b"fish,1\n", b"pending,1\n"
    accepted(client, bob, {"x.csv": in_birds}, datanet="birds")
    accepted(client, bob, {"y.csv": in_fish}, datanet="fish")
    waiting = post(client, bob, {"z.csv": pending}, datanet="birds")
    upload(client, bob, waiting.json()["id"], pending)  # stored, not finalized
    asked = [sha(in_birds), sha(in_fish), sha(pending), sha(b"never"), "not-a-digest"]
    r = client.post("/v1/datanets/birds/held", json={"digests": asked})
    assert r.status_code == 200, r.text
    assert r.json() == {"held": [sha(in_birds)]}
    assert client.post("/v1/datanets/nope/held", json={"digests": []}).status_code == 404
    too_many = client.post("/v1/datanets/birds/held", json={"digests": ["a" * 64] * 10_001})
    assert too_many.status_code == 422


def test_operator_cli_creates_lists_shows_and_updates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'r.sqlite3'}"]
    rules = json.dumps({"formats": ["csv"], "requiredColumns": ["id"]})
    assert registry_main(["datanet", "create", "tables", "--name", "T", "--rules", rules, *db]) == 0
    assert "rules v1" in capsys.readouterr().out
    assert registry_main(["datanet", "update", "tables", "--rules", '{"minRecords": 2}', *db]) == 0
    assert "rules v2" in capsys.readouterr().out
    assert registry_main(["datanet", "list", "--json", *db]) == 0
    listed = {d["id"]: d for d in json.loads(capsys.readouterr().out)}
    assert listed["tables"]["rules"]["minRecords"] == 2
    assert listed["tables"]["rules"]["requiredColumns"] == []
    assert registry_main(["datanet", "show", "tables", *db]) == 0
    assert json.loads(capsys.readouterr().out)["rulesVersion"] == 2
    assert registry_main(["datanet", "show", "nope", *db]) == 3
    assert registry_main(["datanet", "create", "x", "--name", "n", *db]) == 3
    assert "lowercase" in capsys.readouterr().err
    assert registry_main(["datanet", "update", "tables", "--rules", "{nope", *db]) == 3


def _pending(
    client: TestClient, owner: Contributor, who: Contributor, files: dict[str, bytes]
) -> str:
    r = post(client, who, files, datanet="reviewed", parts=[
        {"path": p, "format": "csv", "columns": ["id"], "records": 1} for p in files
    ])  # fmt: skip
    assert r.status_code == 201, r.text
    cid = str(r.json()["id"])
    for data in files.values():
        upload(client, who, cid, data)
    f = client.post(f"/v1/contributions/{cid}/finalize", headers=who.headers)
    assert f.json()["state"] == "pending-review", f.text
    return cid


def test_with_review_on_the_owner_decides_with_a_note(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    make_datanet(client, bob, "reviewed", {"review": True})
    good = _pending(client, bob, alice, {"a.csv": CSV})
    bad = _pending(client, bob, alice, {"b.csv": CSV2})
    assert client.get(f"/v1/contributions/{good}", headers=alice.headers).json()["state"] == (
        "pending-review"
    )
    # Only the owner sees the queue and decides.
    assert client.get("/v1/datanets/reviewed/reviews", headers=alice.headers).status_code == 403
    queue = client.get("/v1/datanets/reviewed/reviews", headers=bob.headers)
    assert queue.status_code == 200, queue.text
    items = queue.json()["items"]
    assert [i["id"] for i in items] == [good, bad]
    assert items[0]["contributor"] == alice.fingerprint and items[0]["rulesVersion"] == 1
    assert items[0]["parts"][0]["columns"] == ["id"] and items[0]["reasons"] == []
    by_alice = client.post(
        f"/v1/contributions/{good}/review",
        json={"decision": "accept", "note": "mine now"},
        headers=alice.headers,
    )
    assert by_alice.status_code == 403
    ok = client.post(
        f"/v1/contributions/{good}/review",
        json={"decision": "accept", "note": " Clean, thanks. "},
        headers=bob.headers,
    )
    assert ok.status_code == 200 and ok.json()["state"] == "accepted", ok.text
    no = client.post(
        f"/v1/contributions/{bad}/review",
        json={"decision": "reject", "note": "Too small"},
        headers=bob.headers,
    )
    assert no.json()["state"] == "rejected"
    seen = {
        c["id"]: c for c in client.get("/v1/contributions", headers=alice.headers).json()["items"]
    }
    assert seen[good]["state"] == "accepted" and seen[good]["reviewNote"] == "Clean, thanks."
    assert seen[good]["reviewedAt"] is not None
    assert seen[bad]["reasons"] == [
        {"code": "rejected_by_owner", "message": "Too small", "path": None}
    ]
    # Deciding again: the same decision answers the same, the other is a conflict.
    again = client.post(
        f"/v1/contributions/{good}/review", json={"decision": "accept"}, headers=bob.headers
    )
    assert again.status_code == 200
    flip = client.post(
        f"/v1/contributions/{good}/review", json={"decision": "reject"}, headers=bob.headers
    )
    assert flip.status_code == 409
    assert client.get("/v1/datanets/reviewed/reviews", headers=bob.headers).json()["items"] == []
    # Only accepted content counts as held (and earns): the rejected file is not held.
    held = client.post("/v1/datanets/reviewed/held", json={"digests": [sha(CSV), sha(CSV2)]})
    assert held.json() == {"held": [sha(CSV)]}


def test_a_submission_without_review_is_not_reviewable(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    make_datanet(client, bob, "plain")
    cid = accepted(client, alice, {"a.csv": CSV}, datanet="plain")
    r = client.post(
        f"/v1/contributions/{cid}/review", json={"decision": "reject"}, headers=bob.headers
    )
    assert r.status_code == 409
    bad = client.post(
        f"/v1/contributions/{cid}/review", json={"decision": "maybe"}, headers=bob.headers
    )
    assert bad.status_code == 422
    missing = client.post(
        "/v1/contributions/c_nope/review", json={"decision": "accept"}, headers=bob.headers
    )
    assert missing.status_code == 404


def test_only_an_approved_contribution_earns(db_url: str, tmp_path: Path) -> None:
    from tests.support.usage_data import event, usage_world

    with usage_world(db_url, tmp_path, contributors=2, per_contributor=0) as world:
        client, (owner, who) = world.client, world.contributors
        make_datanet(client, owner, "reviewed", {"review": True})
        cid = _pending(client, owner, who, {"a.csv": CSV})
        r = world.post_usage([event("e-1", world.model_id, [(cid, 1.0, "influence")])])
        assert r.status_code == 200, r.text
        rejected = r.json()["rejected"]
        assert rejected and "contribution_not_accepted" in json.dumps(rejected)
        _ok = client.post(
            f"/v1/contributions/{cid}/review", json={"decision": "accept"}, headers=owner.headers
        )
        assert _ok.json()["state"] == "accepted"
        r = world.post_usage([event("e-2", world.model_id, [(cid, 1.0, "influence")])])
        assert r.status_code == 200 and not r.json()["rejected"], r.text
