"""DSSE envelopes: PAE, signing, every way an envelope can be bad, and securesystemslib interop."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from app.domain.errors import VerificationError
from app.signing import dsse
from app.signing.identity import fingerprint

PT = dsse.PAYLOAD_TYPE_INTOTO
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","x":"\xc3\xa9 ~~~???>>>"}'


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _trusted(*keys: Ed25519PrivateKey) -> dict[str, Any]:
    return {fingerprint(k): k.public_key() for k in keys}


def _signed(key: Ed25519PrivateKey, payload: bytes = PAYLOAD) -> dict[str, Any]:
    return dsse.sign(payload, PT, [key]).to_dict()


def _verify(obj: dict[str, Any], *keys: Ed25519PrivateKey) -> list[str]:
    return dsse.verify(dsse.Envelope.from_dict(obj), _trusted(*keys), payload_type=PT)


def test_pae_matches_the_spec_example() -> None:
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert dsse.pae("t", b"") == b"DSSEv1 1 t 0 "


def test_sign_and_verify_round_trip(key: Ed25519PrivateKey) -> None:
    env = _signed(key)
    assert env["payloadType"] == PT
    assert env["signatures"][0]["keyid"] == fingerprint(key)
    assert _verify(env, key) == [fingerprint(key)]
    assert dsse.Envelope.from_dict(env).payload == PAYLOAD


def test_verifies_received_bytes_not_reserialised_json(key: Ed25519PrivateKey) -> None:
    odd = b'{ "b" : 1,\n  "a":2 }'  # not canonical: re-serialising would break the signature
    env = _signed(key, odd)
    parsed = dsse.Envelope.from_dict(json.loads(json.dumps(env)))
    assert dsse.verify(parsed, _trusted(key), payload_type=PT)
    assert parsed.payload == odd


def test_tampered_payload_is_rejected(key: Ed25519PrivateKey) -> None:
    env = _signed(key)
    env["payload"] = base64.b64encode(PAYLOAD.replace(b"Statement", b"Statemenx")).decode()
    with pytest.raises(VerificationError, match="does not match the payload"):
        _verify(env, key)


def test_tampered_signature_is_rejected(key: Ed25519PrivateKey) -> None:
    env = _signed(key)
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[10] ^= 0x01
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(VerificationError, match="does not match the payload"):
        _verify(env, key)


def test_swapped_payload_type_is_rejected(key: Ed25519PrivateKey) -> None:
    env = _signed(key)
    env["payloadType"] = "application/json"
    with pytest.raises(VerificationError, match="payloadType is 'application/json'"):
        _verify(env, key)
    # Re-signed under another type: the type check refuses it even though the signature is good.
    other = dsse.sign(PAYLOAD, "application/json", [key])
    with pytest.raises(VerificationError, match="expected 'application/vnd.in-toto"):
        dsse.verify(other, _trusted(key), payload_type=PT)


def test_wrong_key_is_rejected(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    env = _signed(key)
    with pytest.raises(VerificationError, match="unknown key"):
        _verify(env, other)
    # Signed by `other` while claiming to be `key`.
    forged = _signed(other)
    forged["signatures"][0]["keyid"] = fingerprint(key)
    with pytest.raises(VerificationError, match="does not match"):
        _verify(forged, key)


def test_unknown_extra_signature_is_rejected(key: Ed25519PrivateKey) -> None:
    stranger = Ed25519PrivateKey.generate()
    env = dsse.sign(PAYLOAD, PT, [key, stranger]).to_dict()
    with pytest.raises(VerificationError, match=f"unknown key {fingerprint(stranger)}"):
        _verify(env, key)
    assert _verify(env, key, stranger) == [fingerprint(key), fingerprint(stranger)]


def test_duplicate_signatures_are_rejected(key: Ed25519PrivateKey) -> None:
    env = _signed(key)
    env["signatures"].append(dict(env["signatures"][0]))
    with pytest.raises(VerificationError, match="duplicate signatures"):
        _verify(env, key)


def test_required_key_must_sign(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    env = dsse.Envelope.from_dict(_signed(key))
    with pytest.raises(VerificationError, match="not signed by required key"):
        dsse.verify(env, _trusted(key, other), payload_type=PT, required=[fingerprint(other)])


def test_no_signatures_is_rejected(key: Ed25519PrivateKey) -> None:
    env = _signed(key)
    env["signatures"] = []
    with pytest.raises(VerificationError, match="no signatures"):
        _verify(env, key)


@pytest.mark.parametrize("padded", [True, False])
def test_both_base64_alphabets_are_accepted(key: Ed25519PrivateKey, padded: bool) -> None:
    payload = b"\xfb\xff\xbf" * 7 + b"?>"  # forces '+', '/' (standard) and '-', '_' (url-safe)
    env = _signed(key, payload)
    raw_sig = base64.b64decode(env["signatures"][0]["sig"])
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        p, s = enc(payload).decode(), enc(raw_sig).decode()
        if not padded:
            p, s = p.rstrip("="), s.rstrip("=")
        variant = {**env, "payload": p, "signatures": [{"keyid": fingerprint(key), "sig": s}]}
        assert _verify(variant, key) == [fingerprint(key)]
    assert "+" in base64.b64encode(payload).decode() or "/" in base64.b64encode(payload).decode()


def _cut_to_impossible_length(s: str) -> str:
    """Drop characters until len % 4 == 1: no base64 string can have that length."""
    body = s.rstrip("=")
    n = len(body)
    return body[: n - ((n - 1) % 4 or 4)]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: _cut_to_impossible_length(s), "truncated"),
        (lambda s: s[:-2] + "!!", "unexpected characters"),
        (lambda s: s[:4] + "+" + s[5:9] + "-" + s[10:], "unexpected characters"),  # mixed
        (lambda s: s + "===", "not valid base64"),
        (lambda s: "Zm9vYg=", "wrong padding"),
        (lambda s: "Zh==", "non-canonical"),
    ],
)
def test_invalid_or_truncated_base64_payload_is_rejected(
    key: Ed25519PrivateKey, mutate: Any, message: str
) -> None:
    env = _signed(key)
    env["payload"] = mutate(env["payload"])
    with pytest.raises(VerificationError, match=message):
        _verify(env, key)


def test_payload_truncated_on_a_quantum_boundary_fails_the_signature(
    key: Ed25519PrivateKey,
) -> None:
    env = _signed(key, b"x" * 30)
    env["payload"] = env["payload"][:-4]  # still valid base64, just shorter
    with pytest.raises(VerificationError, match="does not match the payload"):
        _verify(env, key)


def test_truncated_signature_is_rejected(key: Ed25519PrivateKey) -> None:
    env = _signed(key)
    raw = base64.b64decode(env["signatures"][0]["sig"])
    env["signatures"][0]["sig"] = base64.b64encode(raw[:48]).decode()
    with pytest.raises(VerificationError, match="48 bytes.*truncated"):
        _verify(env, key)
    env["signatures"][0]["sig"] = "A" * 85  # impossible base64 length
    with pytest.raises(VerificationError, match="signature #1 is not valid base64"):
        _verify(env, key)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "not a JSON object"),
        ({"payloadType": PT, "signatures": []}, "no 'payload'"),
        ({"payload": 3, "payloadType": PT, "signatures": [{}]}, "'payload' is not a string"),
        ({"payload": "", "payloadType": "", "signatures": [{}]}, "payloadType"),
        ({"payload": "", "payloadType": PT, "signatures": ["x"]}, "not a JSON object"),
        ({"payload": "", "payloadType": PT, "signatures": [{"sig": "AA"}]}, "no keyid"),
        ({"payload": "", "payloadType": PT, "signatures": [{"keyid": "k"}]}, "no 'sig'"),
    ],
)
def test_malformed_envelopes_are_rejected(obj: Any, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        dsse.Envelope.from_dict(obj)


def test_non_json_envelope_is_rejected() -> None:
    with pytest.raises(VerificationError, match="not valid JSON"):
        dsse.Envelope.from_json(b"\xff\xfe{")


# -- interop with securesystemslib (a DSSE implementation nobody here wrote) -------------------


def _sslib_key(key: Ed25519PrivateKey) -> SSlibKey:
    return SSlibKey.from_crypto(key.public_key(), keyid=fingerprint(key))


def test_our_envelopes_verify_with_securesystemslib(key: Ed25519PrivateKey) -> None:
    ours = dsse.sign(PAYLOAD, PT, [key]).to_json()
    theirs = SslibEnvelope.from_dict(json.loads(ours))
    accepted = theirs.verify([_sslib_key(key)], 1)
    assert list(accepted) == [fingerprint(key)]
    assert theirs.payload == PAYLOAD
    assert theirs.pae() == dsse.pae(PT, PAYLOAD)


def test_tampered_envelope_fails_securesystemslib_too(key: Ed25519PrivateKey) -> None:
    from securesystemslib.exceptions import VerificationError as SslibVerificationError

    env = _signed(key)
    env["payload"] = base64.b64encode(PAYLOAD + b" ").decode()
    with pytest.raises(SslibVerificationError):
        SslibEnvelope.from_dict(env).verify([_sslib_key(key)], 1)


def test_securesystemslib_envelopes_verify_with_ours(key: Ed25519PrivateKey) -> None:
    signer = CryptoSigner(key, _sslib_key(key))
    theirs = SslibEnvelope(payload=PAYLOAD, payload_type=PT, signatures={})
    theirs.sign(signer)
    data = json.dumps(theirs.to_dict()).encode()
    parsed = dsse.Envelope.from_json(data)
    assert dsse.verify(parsed, _trusted(key), payload_type=PT) == [fingerprint(key)]
    assert parsed.payload == PAYLOAD


def test_securesystemslib_envelope_with_its_default_keyid_is_an_unknown_key(
    key: Ed25519PrivateKey,
) -> None:
    theirs = SslibEnvelope(payload=PAYLOAD, payload_type=PT, signatures={})
    theirs.sign(CryptoSigner(key))  # sslib's own keyid scheme, not our fingerprint
    with pytest.raises(VerificationError, match="unknown key"):
        dsse.verify(dsse.Envelope.from_dict(theirs.to_dict()), _trusted(key), payload_type=PT)
