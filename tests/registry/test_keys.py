"""Key rotation: the new key owns the old key's contributions; the old key is retired."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from app.signing import dsse
from app.signing.identity import fingerprint_raw
from app.signing.rotation import ROTATION_PAYLOAD_TYPE, ROTATION_TYPE, build_rotation
from app.signing.statement import canonical_json
from tests.registry.conftest import TEST_REGISTRY
from tests.support.registry_actors import Contributor, contribution_body
from tests.support.weak_ed25519 import FORGED_SIGNATURE, IDENTITY


def test_rotation_moves_contributions_and_retires_old_key(
    client: TestClient, alice: Contributor
) -> None:
    body = contribution_body(alice.key, {"a.txt": b"a"}, registry=TEST_REGISTRY)
    cid = client.post("/v1/contributions", json=body, headers=alice.headers).json()["id"]
    new = Contributor()
    envelope = build_rotation(alice.key, new.key).to_dict()
    r = client.post("/v1/keys/rotate", json={"envelope": envelope}, headers=alice.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "oldFingerprint": alice.fingerprint,
        "newFingerprint": new.fingerprint,
        "role": "contributor",
        "contributionsMoved": 1,
    }
    # Old tokens are revoked and the old key cannot sign in any more.
    assert client.get("/v1/contributions", headers=alice.headers).status_code == 401
    ch = client.post("/v1/auth/challenge", json={"publicKey": alice.public_key}).json()
    sig = base64.b64encode(alice.key.sign(b"contributor-desk-auth-v1\n" + ch["nonce"].encode()))
    r = client.post(
        "/v1/auth/token",
        json={"publicKey": alice.public_key, "nonce": ch["nonce"], "signature": sig.decode()},
    )
    assert r.status_code == 401
    new.sign_in(client)
    got = client.get(f"/v1/contributions/{cid}", headers=new.headers)
    assert got.status_code == 200
    assert got.json()["owner"] == new.fingerprint
    assert got.json()["signer"] == alice.fingerprint
    # Contributions signed by the old key still finalize (verified against the old key).
    fin = client.post(f"/v1/contributions/{cid}/finalize", headers=new.headers)
    assert fin.status_code == 409  # blob not uploaded yet, but ownership and lookup work
    # Idempotent re-post of the same statement by the new key.
    again = client.post("/v1/keys/rotate", json={"envelope": envelope}, headers=new.headers)
    assert again.status_code == 200


def test_rotation_needs_both_signatures_and_a_party(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    new = Contributor()
    envelope = build_rotation(alice.key, new.key).to_dict()
    envelope["signatures"] = envelope["signatures"][:1]
    r = client.post("/v1/keys/rotate", json={"envelope": envelope}, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_rotation"
    full = build_rotation(alice.key, new.key).to_dict()
    r = client.post("/v1/keys/rotate", json={"envelope": full}, headers=bob.headers)
    assert r.status_code == 403


def test_rotating_twice_to_different_keys_conflicts(client: TestClient, alice: Contributor) -> None:
    k1, k2 = Contributor(), Contributor()
    r = client.post(
        "/v1/keys/rotate",
        json={"envelope": build_rotation(alice.key, k1.key).to_dict()},
        headers=alice.headers,
    )
    assert r.status_code == 200
    k1.sign_in(client)
    # k1 may not hijack alice's retired key towards another successor.
    r = client.post(
        "/v1/keys/rotate",
        json={"envelope": build_rotation(alice.key, k2.key).to_dict()},
        headers=k1.headers,
    )
    assert r.status_code == 403
    k2.sign_in(client)
    r = client.post(
        "/v1/keys/rotate",
        json={"envelope": build_rotation(alice.key, k2.key).to_dict()},
        headers=k2.headers,
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "already_rotated"


def test_rotation_to_a_small_order_key_is_refused(client: TestClient, alice: Contributor) -> None:
    """The identity point's countersignature can be forged for any payload: a rotation to it
    would hand alice's contributions to a key nobody holds (or everybody does)."""
    old_pub = bytes.fromhex(alice.public_key)
    payload = canonical_json(
        {
            "_type": ROTATION_TYPE,
            "oldKey": {"publicKey": alice.public_key, "fingerprint": fingerprint_raw(old_pub)},
            "newKey": {"publicKey": IDENTITY.hex(), "fingerprint": fingerprint_raw(IDENTITY)},
            "createdAt": "2026-12-01T00:00:00Z",
        }
    )
    honest = dsse.sign(payload, ROTATION_PAYLOAD_TYPE, [alice.key])
    forged = dsse.Envelope(
        payload,
        ROTATION_PAYLOAD_TYPE,
        (*honest.signatures, dsse.Signature(fingerprint_raw(IDENTITY), FORGED_SIGNATURE)),
    )
    r = client.post("/v1/keys/rotate", json={"envelope": forged.to_dict()}, headers=alice.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_rotation"
    assert "small-order" in r.json()["error"]["message"]
    # alice keeps her key: her token still works.
    assert client.get("/v1/contributions", headers=alice.headers).status_code == 200
