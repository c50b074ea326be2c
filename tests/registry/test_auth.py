"""Challenge/token auth: good login, forged/expired tokens, wrong key, nonce reuse."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from app.signing.rotation import build_rotation
from registry.auth import require_principal, token_digest
from registry.db.models import AuthChallenge, Key, Token
from tests.support.registry_actors import AUTH_DOMAIN, Contributor
from tests.support.weak_ed25519 import (
    FORGED_SIGNATURE,
    IDENTITY,
    NON_CANONICAL_HEX,
    SMALL_ORDER_HEX,
    non_canonical_s,
)


def _challenge(client: TestClient, who: Contributor) -> str:
    r = client.post("/v1/auth/challenge", json={"publicKey": who.public_key})
    assert r.status_code == 200
    return str(r.json()["nonce"])


def _token_request(client: TestClient, who: Contributor, nonce: str, signer: Ed25519PrivateKey):
    sig = base64.b64encode(signer.sign(AUTH_DOMAIN + nonce.encode())).decode()
    return client.post(
        "/v1/auth/token", json={"publicKey": who.public_key, "nonce": nonce, "signature": sig}
    )


def test_login_gives_working_token(client: TestClient) -> None:
    who = Contributor()
    token = who.sign_in(client)
    assert len(token) >= 32
    r = client.get("/v1/contributions", headers=who.headers)
    assert r.status_code == 200
    assert r.json() == {"items": [], "nextCursor": None, "hasMore": False}


def test_missing_and_forged_tokens_are_401_with_www_authenticate(client: TestClient) -> None:
    r = client.get("/v1/contributions")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthorized"
    r = client.get("/v1/contributions", headers={"Authorization": "Bearer forged-token-value"})
    assert r.status_code == 401
    assert "WWW-Authenticate" in r.headers


def test_expired_token_is_refused(client: TestClient, app: FastAPI) -> None:
    who = Contributor()
    who.sign_in(client)
    with app.state.sessions() as s:
        s.execute(update(Token).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()
    r = client.get("/v1/contributions", headers=who.headers)
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_signature_by_another_key_is_refused(client: TestClient) -> None:
    who = Contributor()
    nonce = _challenge(client, who)
    r = _token_request(client, who, nonce, Ed25519PrivateKey.generate())
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth_failed"


def test_nonce_is_single_use(client: TestClient) -> None:
    who = Contributor()
    nonce = _challenge(client, who)
    assert _token_request(client, who, nonce, who.key).status_code == 200
    r = _token_request(client, who, nonce, who.key)
    assert r.status_code == 401
    assert "already used" in r.json()["error"]["message"]


def test_nonce_of_another_key_is_refused(client: TestClient) -> None:
    a, b = Contributor(), Contributor()
    nonce = _challenge(client, a)
    assert _token_request(client, b, nonce, b.key).status_code == 401


def test_expired_challenge_is_refused(client: TestClient, app: FastAPI) -> None:
    who = Contributor()
    nonce = _challenge(client, who)
    with app.state.sessions() as s:
        s.execute(update(AuthChallenge).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()
    r = _token_request(client, who, nonce, who.key)
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_bad_public_key_is_422_with_error_shape(client: TestClient) -> None:
    r = client.post("/v1/auth/challenge", json={"publicKey": "zz"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


def test_operator_role_from_settings(make_app: Callable[..., FastAPI], db_url: str) -> None:
    op = Contributor()
    app = make_app(db_url, operator_keys=(op.public_key,))
    with TestClient(app, base_url="http://testserver") as c:
        r_ch = c.post("/v1/auth/challenge", json={"publicKey": op.public_key})
        nonce = r_ch.json()["nonce"]
        r = _token_request(c, op, nonce, op.key)
        assert r.json()["role"] == "operator"
        other = Contributor()
        r2 = _token_request(c, other, _challenge(c, other), other.key)
        assert r2.json()["role"] == "contributor"


@pytest.mark.parametrize("hex_key", SMALL_ORDER_HEX + NON_CANONICAL_HEX)
def test_weak_or_non_canonical_keys_get_no_challenge(client: TestClient, hex_key: str) -> None:
    r = client.post("/v1/auth/challenge", json={"publicKey": hex_key})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "weak_key"


def test_forged_sign_in_with_the_identity_key_is_refused(client: TestClient, app: FastAPI) -> None:
    """Even with a challenge on record for the identity point (as one issued before weak keys
    were refused would be), its message-independent "signature" does not sign in."""
    nonce = "ab" * 32
    with app.state.sessions() as s:
        s.add(
            AuthChallenge(
                nonce=nonce,
                public_key=IDENTITY.hex(),
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
        )
        s.commit()
    r = client.post(
        "/v1/auth/token",
        json={
            "publicKey": IDENTITY.hex(),
            "nonce": nonce,
            "signature": base64.b64encode(FORGED_SIGNATURE).decode(),
        },
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth_failed"


def test_non_canonical_signature_does_not_sign_in(client: TestClient) -> None:
    who = Contributor()
    nonce = _challenge(client, who)
    sig = non_canonical_s(who.key.sign(AUTH_DOMAIN + nonce.encode()))
    r = client.post(
        "/v1/auth/token",
        json={
            "publicKey": who.public_key,
            "nonce": nonce,
            "signature": base64.b64encode(sig).decode(),
        },
    )
    assert r.status_code == 401


def test_weak_operator_key_is_refused_at_start(
    make_app: Callable[..., FastAPI], db_url: str
) -> None:
    with pytest.raises(ValueError, match="small-order"):
        make_app(db_url, operator_keys=(IDENTITY.hex(),))


def _statements(app: FastAPI) -> list[str]:
    """Every SQL statement the app's engine runs from now on (a live list)."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *rest: object) -> None:
        seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    return seen


def test_a_token_is_resolved_in_one_statement(client: TestClient, app: FastAPI) -> None:
    """Token, key, rotation state and the keys rotated into it: one read per request."""
    who = Contributor()
    who.sign_in(client)
    # (the rate limiter keys its buckets by the token's key: it reads that once per token)
    assert client.get("/v1/contributions", headers=who.headers).status_code == 200
    seen = _statements(app)
    assert client.get("/v1/contributions", headers=who.headers).status_code == 200
    auth = [s for s in seen if re.search(r"\b(FROM|JOIN) (tokens|keys)\b", s)]
    assert len(auth) == 1, auth


def test_expiry_and_revocation_count_from_the_next_request(
    client: TestClient, app: FastAPI
) -> None:
    """Nothing about a token is remembered between requests: a token that just worked is
    refused on the next request once it expired, was revoked, or its key was rotated."""
    cases = {
        "expired": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)},
        "not valid": {"revoked": True},
    }
    for message, change in cases.items():
        who = Contributor()
        who.sign_in(client)
        for _ in range(3):
            assert client.get("/v1/contributions", headers=who.headers).status_code == 200
        digest = token_digest(who.token)
        with app.state.sessions() as s:
            s.execute(update(Token).where(Token.token_sha256 == digest).values(**change))
            s.commit()
        r = client.get("/v1/contributions", headers=who.headers)
        assert r.status_code == 401, message
        assert message in r.json()["error"]["message"]
    # A token issued while its key was being rotated (not revoked by the rotation): the
    # key's rotation alone refuses it.
    old, new = Contributor(), Contributor()
    old.sign_in(client)
    new.sign_in(client)
    assert client.get("/v1/contributions", headers=old.headers).status_code == 200
    with app.state.sessions() as s:
        s.execute(update(Key).where(Key.fingerprint == old.fingerprint).values(
            rotated_to=new.fingerprint))  # fmt: skip
        s.commit()
    r = client.get("/v1/contributions", headers=old.headers)
    assert r.status_code == 401
    assert "rotated" in r.json()["error"]["message"]


def test_keys_rotated_into_a_key_count_from_the_next_request(
    client: TestClient, app: FastAPI
) -> None:
    """a -> b -> c: c's token, used before either rotation, holds both earlier keys (nearest
    first) on the next request after them."""
    a, b, c = Contributor(), Contributor(), Contributor()
    for who in (a, b, c):
        who.sign_in(client)

    def previous() -> tuple[str, ...]:
        with app.state.sessions() as s:
            creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=c.token)
            req = Request({"type": "http", "headers": [], "state": {}})
            return require_principal(req, creds, s).previous_fingerprints

    assert previous() == ()
    r = client.post("/v1/keys/rotate", json={"envelope": build_rotation(b.key, c.key).to_dict()},
                    headers=b.headers)  # fmt: skip
    assert r.status_code == 200, r.text
    assert previous() == (b.fingerprint,)
    r = client.post("/v1/keys/rotate", json={"envelope": build_rotation(a.key, b.key).to_dict()},
                    headers=a.headers)  # fmt: skip
    assert r.status_code == 409  # b is rotated out already: a chain grows only at its head
    d = Contributor()
    d.sign_in(client)
    r = client.post("/v1/keys/rotate", json={"envelope": build_rotation(d.key, c.key).to_dict()},
                    headers=d.headers)  # fmt: skip
    assert r.status_code == 200, r.text
    assert previous() == tuple(sorted((b.fingerprint, d.fingerprint)))
    with app.state.sessions() as s:  # a chain two deep (rotated in before b was)
        s.execute(update(Key).where(Key.fingerprint == a.fingerprint).values(
            rotated_to=b.fingerprint))  # fmt: skip
        s.commit()
    assert previous() == (*sorted((b.fingerprint, d.fingerprint)), a.fingerprint)


def test_hot_reads_refuse_a_bad_token_before_looking_at_the_query(client: TestClient) -> None:
    """The ledger page and the usage window resolve their token on a session of their own:
    still 401 for a missing, forged, expired or revoked token first, then 422 for the query."""
    who = Contributor()
    who.sign_in(client)
    bad_queries = ["/v1/me/rewards?limit=0", "/v1/contributions/c1/usage?bucket=year"]
    for url in bad_queries:
        assert client.get(url).status_code == 401
        forged = client.get(url, headers={"Authorization": "Bearer forged-token-value"})
        assert forged.status_code == 401 and "WWW-Authenticate" in forged.headers
        assert client.get(url, headers=who.headers).status_code == 422
    ok = client.get("/v1/me/rewards", headers=who.headers)
    assert ok.status_code == 200 and ok.json()["items"] == []
    assert client.get("/v1/contributions/c1/usage", headers=who.headers).status_code == 404
