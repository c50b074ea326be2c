"""Creating, finalizing, listing contributions; content addressing; datanet rules; tenancy."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert

from registry.db.models import Blob, Datanet
from tests.registry.conftest import TEST_REGISTRY
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata

FILES = {"data/a.csv": b"x,y\n1,2\n", "data/b.csv": b"x,y\n3,4\n", "readme.txt": b"hello\n"}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def create(client: TestClient, who: Contributor, files: dict[str, bytes] = FILES, **kw: Any):
    body = contribution_body(who.key, files, registry=TEST_REGISTRY, **kw)
    return client.post("/v1/contributions", json=body, headers=who.headers)


def upload(client: TestClient, who: Contributor, cid: str, data: bytes) -> None:
    """Upload one blob with a single tus PATCH."""
    sha = _sha(data)
    r = client.post(
        "/v1/uploads/",
        headers={
            **who.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Upload-Metadata": tus_metadata(sha, cid),
        },
    )
    assert r.status_code == 201, r.text
    r = client.patch(
        r.headers["location"],
        content=data,
        headers={
            **who.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code == 204, r.text


def test_create_lists_missing_blobs_once_each(client: TestClient, alice: Contributor) -> None:
    files = {**FILES, "copy.csv": FILES["data/a.csv"]}
    r = create(client, alice, files)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("c_")
    assert body["state"] == "submitted"
    assert body["missingBlobs"] == sorted({_sha(b) for b in FILES.values()})


def test_repost_is_idempotent(client: TestClient, alice: Contributor) -> None:
    body = contribution_body(alice.key, FILES, registry=TEST_REGISTRY)
    first = client.post("/v1/contributions", json=body, headers=alice.headers)
    again = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(client.get("/v1/contributions", headers=alice.headers).json()["items"]) == 1


def test_full_flow_upload_finalize_accepted(client: TestClient, alice: Contributor) -> None:
    cid = create(client, alice).json()["id"]
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "blobs_missing"
    assert len(r.json()["error"]["details"]["missingBlobs"]) == 3
    for data in FILES.values():
        upload(client, alice, cid, data)
    assert (
        client.get(f"/v1/contributions/{cid}", headers=alice.headers).json()["missingBlobs"] == []
    )
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "accepted"
    assert r.json()["reasons"] == []
    again = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert again.json()["state"] == "accepted"


def test_known_blobs_are_requested_from_other_contributors_too(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    """Storage is shared, possession is not: bob must send (or prove) what alice stored
    (tests/registry/test_possession.py covers the proofs)."""
    cid = create(client, alice).json()["id"]
    upload(client, alice, cid, FILES["readme.txt"])
    r = create(client, bob, {"mine.txt": FILES["readme.txt"], "other.bin": b"\x00\x01"})
    assert r.json()["missingBlobs"] == sorted([_sha(FILES["readme.txt"]), _sha(b"\x00\x01")])
    again = create(client, alice, {"again.txt": FILES["readme.txt"]}, title="Again")
    assert again.json()["missingBlobs"] == []


def test_signature_by_another_key_is_refused(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    body = contribution_body(bob.key, FILES, registry=TEST_REGISTRY)
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "bad_signature"


def test_envelope_for_another_registry_is_refused(client: TestClient, alice: Contributor) -> None:
    body = contribution_body(alice.key, FILES, registry="https://elsewhere.example")
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "statement_mismatch"


def test_manifest_not_matching_statement_is_refused(client: TestClient, alice: Contributor) -> None:
    body = contribution_body(alice.key, FILES, registry=TEST_REGISTRY)
    other = contribution_body(alice.key, {"z.txt": b"z"}, registry=TEST_REGISTRY)
    body["manifest"] = other["manifest"]
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "statement_mismatch"


def test_non_canonical_manifest_is_refused(client: TestClient, alice: Contributor) -> None:
    body = contribution_body(alice.key, FILES, registry=TEST_REGISTRY)
    raw = base64.b64decode(body["manifest"]) + b" "
    body["manifest"] = base64.b64encode(raw).decode()
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_manifest"


def test_metadata_must_match_signed_statement(client: TestClient, alice: Contributor) -> None:
    body = contribution_body(alice.key, FILES, registry=TEST_REGISTRY)
    body["metadata"]["title"] = "Something else"
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "metadata_mismatch"


def test_unknown_datanet_is_refused(client: TestClient, alice: Contributor) -> None:
    r = create(client, alice, datanet="nope")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unknown_datanet"


def test_datanet_rules_reject_with_reasons(
    client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    with app.state.sessions() as s:
        s.execute(
            insert(Datanet).values(
                id="strict",
                name="Strict",
                description="",
                rules={
                    "kinds": ["dataset"],
                    "formats": ["csv"],
                    "licenses": ["CC0-1.0"],
                    "maxTotalSize": 10,
                    "maxFiles": 2,
                    "review": False,
                },
            )
        )
        s.commit()
    r = create(client, alice, datanet="strict")
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "rejected"
    assert body["missingBlobs"] == []
    codes = {x["code"] for x in body["reasons"]}
    assert codes == {"license_not_accepted", "too_many_files", "too_large", "format_not_accepted"}
    assert {x.get("path") for x in body["reasons"] if x["code"] == "format_not_accepted"} == {
        "readme.txt"
    }
    d = client.get("/v1/datanets/strict").json()
    assert d["rules"]["formats"] == ["csv"]
    ids = [x["id"] for x in client.get("/v1/datanets").json()["items"]]
    assert ids == ["open-data", "strict"]
    assert client.get("/v1/datanets/missing").status_code == 404


def test_annotation_needs_existing_parent(client: TestClient, alice: Contributor) -> None:
    parent = create(client, alice).json()["id"]
    ok = create(client, alice, {"labels.json": b"{}"}, kind="annotation", parent=parent)
    assert ok.json()["state"] == "submitted"
    got = client.get(f"/v1/contributions/{ok.json()['id']}", headers=alice.headers).json()
    assert got["parent"] == parent
    bad = create(client, alice, {"l2.json": b"[]"}, kind="annotation", parent="c_doesnotexist")
    assert bad.json()["state"] == "rejected"
    assert [x["code"] for x in bad.json()["reasons"]] == ["parent_not_found"]
    orphan = create(client, alice, {"l3.json": b"[1]"}, kind="annotation")
    assert [x["code"] for x in orphan.json()["reasons"]] == ["parent_required"]


def test_blob_hash_mismatch_rejects_on_finalize(
    client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    files = {"a.txt": b"right bytes"}
    cid = create(client, alice, files).json()["id"]
    sha = _sha(files["a.txt"])
    r = client.post(
        "/v1/uploads/",
        headers={
            **alice.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "11",
            "Upload-Metadata": tus_metadata(sha, cid),
        },
    )
    r = client.patch(
        r.headers["location"],
        content=b"wrong bytes",
        headers={
            **alice.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code == 460
    assert r.json()["error"]["code"] == "blob_hash_mismatch"
    assert not app.state.blobs.has(sha)
    with app.state.sessions() as s:
        assert s.get(Blob, sha) is None
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert r.json()["state"] == "rejected"
    assert r.json()["reasons"] == [
        {
            "code": "blob_hash_mismatch",
            "message": r.json()["reasons"][0]["message"],
            "path": "a.txt",
        }
    ]


def test_cross_tenant_read_finalize_upload_are_404(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    cid = create(client, alice).json()["id"]
    assert client.get(f"/v1/contributions/{cid}", headers=bob.headers).status_code == 404
    assert client.get("/v1/contributions/c_nonexistent", headers=bob.headers).status_code == 404
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=bob.headers)
    assert r.status_code == 404
    assert client.get("/v1/contributions", headers=bob.headers).json()["items"] == []
    sha = _sha(FILES["readme.txt"])
    r = client.post(
        "/v1/uploads/",
        headers={
            **bob.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "6",
            "Upload-Metadata": tus_metadata(sha, cid),
        },
    )
    assert r.status_code == 404
    # Alice's upload URL is useless to Bob.
    r = client.post(
        "/v1/uploads/",
        headers={
            **alice.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "6",
            "Upload-Metadata": tus_metadata(sha, cid),
        },
    )
    url = r.headers["location"]
    tus = {"Tus-Resumable": "1.0.0"}
    assert client.head(url, headers={**bob.headers, **tus}).status_code == 404
    assert client.delete(url, headers={**bob.headers, **tus}).status_code == 404
    r = client.patch(
        url,
        content=FILES["readme.txt"],
        headers={
            **bob.headers,
            **tus,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert r.status_code == 404
    assert client.head(url, headers={**alice.headers, **tus}).headers["upload-offset"] == "0"


def test_list_pagination_with_cursor(client: TestClient, alice: Contributor) -> None:
    ids = [create(client, alice, {f"f{i}.txt": bytes([i])}).json()["id"] for i in range(5)]
    page = client.get("/v1/contributions?mine=true&limit=2", headers=alice.headers).json()
    assert [x["id"] for x in page["items"]] == ids[:2]
    assert page["hasMore"] is True
    seen = [x["id"] for x in page["items"]]
    while page["hasMore"]:
        page = client.get(
            f"/v1/contributions?limit=2&after={page['nextCursor']}", headers=alice.headers
        ).json()
        seen += [x["id"] for x in page["items"]]
    assert seen == ids
    tail = client.get(f"/v1/contributions?after={page['nextCursor']}", headers=alice.headers).json()
    assert tail == {"items": [], "nextCursor": page["nextCursor"], "hasMore": False}
    assert client.get("/v1/contributions?after=abc", headers=alice.headers).status_code == 422
