"""Proof of possession: a key may rely on a stored blob only if it sent or proved the bytes.

The attack: key B learns the sha256 and size of a blob key A uploaded and names it in its own
manifest, hoping to be credited for A's data without having it. B must see that blob as missing
exactly like one the registry never stored, finalize must refuse it until B uploads or proves
it, and a wrong proof must not count. Re-submitting one's own data stays free.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text, update

from app.manifest.possession import FULL_LIMIT, possession_proof, proof_ranges
from app.signing.rotation import build_rotation
from registry.db.models import PossessionChallenge
from registry.db.session import alembic_config, make_engine
from registry.possession import MAX_PROOFS
from tests.registry.test_contributions import create, upload
from tests.support.registry_actors import Contributor

SECRET = b"alice's private data, 42 bytes of it......"
ABSENT = b"bytes no key has ever sent to this server."  # same size as SECRET
assert len(SECRET) == len(ABSENT)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _alice_stores(client: TestClient, alice: Contributor, data: bytes = SECRET) -> str:
    cid = create(client, alice, {"secret.bin": data}, title="Alice's").json()["id"]
    upload(client, alice, cid, data)
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert r.json()["state"] == "accepted", r.text
    return str(cid)


def _challenge(client: TestClient, who: Contributor, cid: str, *shas: str) -> dict[str, str]:
    r = client.post(
        f"/v1/contributions/{cid}/possession/challenges",
        json={"blobs": list(shas)},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    return {c["sha256"]: c["nonce"] for c in r.json()["challenges"]}


def _prove(client: TestClient, who: Contributor, cid: str, proofs: dict[str, str]) -> Any:
    r = client.post(
        f"/v1/contributions/{cid}/possession/proofs",
        json={"proofs": [{"sha256": s, "proof": p} for s, p in proofs.items()]},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _proof(nonce: str, data: bytes) -> str:
    def read_at(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    return possession_proof(bytes.fromhex(nonce), _sha(data), len(data), read_at)


def post_batch(
    client: TestClient, who: Contributor, cid: str, blobs: list[tuple[str, int, bytes]]
) -> Any:
    index = json.dumps({"blobs": [{"sha256": s, "size": n} for s, n, _ in blobs]}).encode()
    return client.post(
        "/v1/uploads/batch",
        params={"contribution": cid},
        content=len(index).to_bytes(4, "big") + index + b"".join(d for _, _, d in blobs),
        headers={**who.headers, "Content-Type": "application/octet-stream"},
    )


def _finalize(client: TestClient, who: Contributor, cid: str) -> Any:
    return client.post(f"/v1/contributions/{cid}/finalize", headers=who.headers)


def test_naming_anothers_digest_gets_nothing_without_proof(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    _alice_stores(client, alice)
    created = create(client, bob, {"stolen.bin": SECRET}, title="Not mine")
    assert created.status_code == 201
    cid = created.json()["id"]
    # Listed as missing, exactly like a blob nobody ever sent.
    assert created.json()["missingBlobs"] == [_sha(SECRET)]
    detail = client.get(f"/v1/contributions/{cid}", headers=bob.headers).json()
    assert detail["missingBlobs"] == [_sha(SECRET)]
    r = _finalize(client, bob, cid)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "blobs_missing"
    assert r.json()["error"]["details"] == {"missingBlobs": [_sha(SECRET)]}
    # A made-up proof does not count, and the nonce is used up by it.
    nonce = _challenge(client, bob, cid, _sha(SECRET))[_sha(SECRET)]
    guessed = _proof(nonce, ABSENT)
    assert _prove(client, bob, cid, {_sha(SECRET): guessed}) == {
        "proven": [],
        "notProven": [_sha(SECRET)],
    }
    assert _prove(client, bob, cid, {_sha(SECRET): _proof(nonce, SECRET)})["proven"] == []
    # A proof over the digest alone (what knowing the digest gives) is refused too.
    nonce = _challenge(client, bob, cid, _sha(SECRET))[_sha(SECRET)]
    digest_only = hashlib.sha256(bytes.fromhex(nonce) + bytes.fromhex(_sha(SECRET))).hexdigest()
    assert _prove(client, bob, cid, {_sha(SECRET): digest_only})["proven"] == []
    assert _finalize(client, bob, cid).status_code == 409
    assert client.get(f"/v1/contributions/{cid}", headers=bob.headers).json()["state"] == (
        "submitted"
    )


def test_right_proof_is_accepted_and_sends_no_bytes(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    _alice_stores(client, alice)
    cid = create(client, bob, {"mine-too.bin": SECRET}).json()["id"]
    nonce = _challenge(client, bob, cid, _sha(SECRET))[_sha(SECRET)]
    assert _prove(client, bob, cid, {_sha(SECRET): _proof(nonce, SECRET)}) == {
        "proven": [_sha(SECRET)],
        "notProven": [],
    }
    r = _finalize(client, bob, cid)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "accepted"
    # Proven once, held for good: bob's next contribution with it is free.
    later = create(client, bob, {"again.bin": SECRET}, title="Later")
    assert later.json()["missingBlobs"] == []


def test_uploading_existing_bytes_grants_possession(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    _alice_stores(client, alice)
    cid = create(client, bob, {"mine-too.bin": SECRET}).json()["id"]
    upload(client, bob, cid, SECRET)  # stored once; the upload just succeeds
    assert client.get(f"/v1/contributions/{cid}", headers=bob.headers).json()["missingBlobs"] == []
    assert _finalize(client, bob, cid).json()["state"] == "accepted"


def test_batch_upload_of_existing_bytes_grants_possession(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    _alice_stores(client, alice)
    cid = create(client, bob, {"mine-too.bin": SECRET}).json()["id"]
    r = post_batch(client, bob, cid, [(_sha(SECRET), len(SECRET), SECRET)])
    assert r.status_code == 200, r.text
    assert r.json()["present"] == [_sha(SECRET)]
    assert _finalize(client, bob, cid).json()["state"] == "accepted"


def _masked(body: Any, secret: str) -> str:
    """The answer with ids, times, nonces and the one digest that differs blanked out."""
    text = json.dumps(body, sort_keys=True).replace(secret, "<sha>")
    text = re.sub(r'"c_[0-9a-f]+"', '"<id>"', text)
    text = re.sub(r'"\d{4}-\d\d-\d\dT[^"]+"', '"<time>"', text)
    text = re.sub(r'"[0-9a-f]{64}"', '"<hex>"', text)
    return re.sub(r'"cursor": "\d+"', '"cursor": "<n>"', text)


def test_an_unproven_key_cannot_tell_stored_from_absent(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    """Every answer bob gets about alice's stored blob is the answer about a never-stored one
    of the same size (masked: ids, times, nonces, and the digest itself)."""
    _alice_stores(client, alice)
    answers: dict[str, list[tuple[int, str]]] = {}
    for name, data in (("stored", SECRET), ("absent", ABSENT)):
        sha = _sha(data)
        seen: list[tuple[int, str]] = []
        r = create(client, bob, {"x.bin": data}, title="Probe")
        seen.append((r.status_code, _masked(r.json(), sha)))
        cid = r.json()["id"]
        for resp in (
            client.get(f"/v1/contributions/{cid}", headers=bob.headers),
            _finalize(client, bob, cid),
            client.post(
                f"/v1/contributions/{cid}/possession/challenges",
                json={"blobs": [sha]},
                headers=bob.headers,
            ),
        ):
            seen.append((resp.status_code, _masked(resp.json(), sha)))
        nonce = _challenge(client, bob, cid, sha)[sha]
        wrong = _proof(nonce, b"\0" * len(data))
        proof = client.post(
            f"/v1/contributions/{cid}/possession/proofs",
            json={"proofs": [{"sha256": sha, "proof": wrong}]},
            headers=bob.headers,
        )
        seen.append((proof.status_code, _masked(proof.json(), sha)))
        seen.append((_finalize(client, bob, cid).status_code, ""))
        answers[name] = seen
    assert answers["stored"] == answers["absent"]
    assert answers["stored"][0][0] == 201 and answers["stored"][2][0] == 409


def test_resubmitting_own_data_is_free(client: TestClient, alice: Contributor) -> None:
    _alice_stores(client, alice)
    r = create(client, alice, {"renamed.bin": SECRET}, title="Same bytes, new contribution")
    assert r.status_code == 201
    assert r.json()["missingBlobs"] == []
    assert _finalize(client, alice, r.json()["id"]).json()["state"] == "accepted"


def test_a_rotated_key_keeps_what_the_old_key_held(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    _alice_stores(client, alice)  # via tus, recorded at finalize
    cid = create(client, alice, {"b.bin": ABSENT}, title="Batch").json()["id"]
    assert post_batch(client, alice, cid, [(_sha(ABSENT), len(ABSENT), ABSENT)]).status_code == 200
    new = Contributor()
    envelope = build_rotation(alice.key, new.key).to_dict()
    r = client.post("/v1/keys/rotate", json={"envelope": envelope}, headers=alice.headers)
    assert r.status_code == 200, r.text
    new.sign_in(client)
    again = create(client, new, {"s.bin": SECRET, "b.bin": ABSENT}, title="After rotation")
    assert again.json()["missingBlobs"] == []
    # Rotation passes holdings to the successor only, not to anyone else.
    other = create(client, bob, {"s.bin": SECRET, "b.bin": ABSENT}, title="Bob")
    assert other.json()["missingBlobs"] == sorted([_sha(SECRET), _sha(ABSENT)])


def test_blob_lost_from_the_store_is_missing_even_for_its_holder(
    client: TestClient, app: FastAPI, alice: Contributor
) -> None:
    _alice_stores(client, alice)
    app.state.blobs.path_for(_sha(SECRET)).unlink()
    r = create(client, alice, {"again.bin": SECRET}, title="After a loss")
    # The row is still there, so create cannot tell; finalize checks the store.
    cid = r.json()["id"]
    f = _finalize(client, alice, cid)
    assert f.status_code == 409 and f.json()["error"]["details"]["missingBlobs"] == [_sha(SECRET)]


def test_large_blob_proof_samples_ranges(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    big = bytes(range(256)) * (3 * FULL_LIMIT // 256 + 7)  # ~3 MiB, not a round size
    _alice_stores(client, alice, big)
    cid = create(client, bob, {"big.bin": big}).json()["id"]
    nonce = _challenge(client, bob, cid, _sha(big))[_sha(big)]
    ranges = proof_ranges(bytes.fromhex(nonce), len(big))
    assert len(ranges) == 32 and sum(n for _, n in ranges) == FULL_LIMIT
    # One byte wrong inside a sampled range: refused.
    offset = ranges[5][0] + 100
    damaged = big[:offset] + bytes([big[offset] ^ 1]) + big[offset + 1 :]
    assert _prove(client, bob, cid, {_sha(big): _proof(nonce, damaged)})["proven"] == []
    nonce = _challenge(client, bob, cid, _sha(big))[_sha(big)]
    assert _prove(client, bob, cid, {_sha(big): _proof(nonce, big)})["proven"] == [_sha(big)]
    assert _finalize(client, bob, cid).json()["state"] == "accepted"


def test_expired_or_foreign_challenges_do_not_count(
    client: TestClient, app: FastAPI, alice: Contributor, bob: Contributor
) -> None:
    _alice_stores(client, alice)
    cid = create(client, bob, {"mine-too.bin": SECRET}).json()["id"]
    nonce = _challenge(client, bob, cid, _sha(SECRET))[_sha(SECRET)]
    with app.state.sessions() as s:
        s.execute(
            update(PossessionChallenge).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        s.commit()
    assert _prove(client, bob, cid, {_sha(SECRET): _proof(nonce, SECRET)})["proven"] == []
    # A nonce belongs to its contribution: proving it on another one does nothing.
    other = create(client, bob, {"copy.bin": SECRET}, title="Other").json()["id"]
    nonce = _challenge(client, bob, cid, _sha(SECRET))[_sha(SECRET)]
    assert _prove(client, bob, other, {_sha(SECRET): _proof(nonce, SECRET)})["proven"] == []
    # Never a proof without a challenge, and alice cannot answer for bob's contribution.
    r = client.post(
        f"/v1/contributions/{cid}/possession/proofs",
        json={"proofs": [{"sha256": _sha(SECRET), "proof": _proof(nonce, SECRET)}]},
        headers=alice.headers,
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"blobs": []}, 422, "invalid_request"),
        ({"blobs": ["A" * 64]}, 422, "invalid_request"),
        ({"blobs": ["0" * 63]}, 422, "invalid_request"),
        ({"blobs": ["0" * 64] * 1001}, 422, "invalid_request"),
        ({"blobs": ["0" * 64]}, 422, "blob_not_expected"),
    ],
)
def test_challenge_requests_are_checked(
    client: TestClient, bob: Contributor, body: dict[str, Any], status: int, code: str
) -> None:
    cid = create(client, bob, {"a.bin": ABSENT}).json()["id"]
    r = client.post(
        f"/v1/contributions/{cid}/possession/challenges", json=body, headers=bob.headers
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_proof_requests_are_bounded_and_need_a_submitted_contribution(
    client: TestClient, alice: Contributor
) -> None:
    too_many = {"proofs": [{"sha256": "0" * 64, "proof": "0" * 64}] * (MAX_PROOFS + 1)}
    cid = create(client, alice, {"a.bin": ABSENT}).json()["id"]
    r = client.post(
        f"/v1/contributions/{cid}/possession/proofs", json=too_many, headers=alice.headers
    )
    assert r.status_code == 422
    done = _alice_stores(client, alice)
    r = client.post(
        f"/v1/contributions/{done}/possession/challenges",
        json={"blobs": [_sha(SECRET)]},
        headers=alice.headers,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_uploadable"
    r = client.post(
        "/v1/contributions/c_nope/possession/challenges",
        json={"blobs": [_sha(SECRET)]},
        headers=alice.headers,
    )
    assert r.status_code == 404


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database without any table."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    else:
        pg_url: str = request.getfixturevalue("pg_url")
        name = "m_" + secrets.token_hex(6)
        plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        engine = make_engine(pg_url.rsplit("/", 1)[0] + f"/{name}")
    yield engine
    engine.dispose()


_T = "'2026-11-01 10:00:00'"


def test_0004_backfills_possession_from_uploads_and_accepted_contributions(
    empty_db: Engine,
) -> None:
    cfg = alembic_config(empty_db)
    command.upgrade(cfg, "0003")
    with empty_db.begin() as c:
        for fpr in ("ka", "kb", "kc"):
            c.execute(
                text(
                    "INSERT INTO keys (fingerprint, public_key, role, created_at) "
                    f"VALUES (:f, :p, 'contributor', {_T})"
                ),
                {"f": fpr, "p": "p" + fpr},
            )
        for cid, owner, state in (("c1", "ka", "accepted"), ("c2", "kb", "submitted")):
            c.execute(
                text(
                    "INSERT INTO contributions (id, owner_fingerprint, signer_fingerprint, "
                    "envelope, envelope_sha256, manifest, manifest_sha256, metadata, kind, "
                    "datanet, title, state, reasons, file_count, total_size, created_at, "
                    f"updated_at) VALUES (:c, :o, :o, '{{}}', :c, :m, :c, '{{}}', 'dataset', "
                    f"'open-data', 't', :s, '[]', 2, 2, {_T}, {_T})"
                ),
                {"c": cid, "o": owner, "s": state, "m": b"{}"},
            )
            for path, sha in (("a", "s1"), ("b", "s2")):
                c.execute(
                    text(
                        "INSERT INTO contribution_files (contribution_id, path, size, sha256) "
                        "VALUES (:c, :p, 1, :h)"
                    ),
                    {"c": cid, "p": path, "h": sha},
                )
        c.execute(text(f"INSERT INTO blobs (sha256, size, stored_at) VALUES ('s1', 1, {_T})"))
        for uid, owner, sha, done, failure in (
            ("u1", "kb", "s1", True, None),  # finished: kb holds s1
            ("u2", "kc", "s2", True, "hash_mismatch"),  # failed: holds nothing
            ("u3", "kc", "s1", False, None),  # unfinished: holds nothing
        ):
            c.execute(
                text(
                    "INSERT INTO uploads (id, contribution_id, owner_fingerprint, sha256, "
                    '"length", "offset", metadata, created_at, expires_at, completed_at, '
                    f"failure) VALUES (:u, 'c2', :o, :h, 1, 1, '{{}}', {_T}, {_T}, "
                    f":done, :f)"
                ),
                {"u": uid, "o": owner, "h": sha, "done": _T.strip("'") if done else None,
                 "f": failure},
            )  # fmt: skip
    command.upgrade(cfg, "0004")
    with empty_db.connect() as c:
        rows = c.execute(text("SELECT fingerprint, sha256, how FROM blob_possessions")).all()
    # ka: accepted c1, whose s1 is stored (s2 never was); kb: its finished upload.
    assert sorted(tuple(r) for r in rows) == [("ka", "s1", "migrated"), ("kb", "s1", "migrated")]
    command.downgrade(cfg, "0003")
    with empty_db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM contributions")).scalar() == 2
