"""Small-order and non-canonical Ed25519 keys and signatures are refused everywhere a key or
signature is accepted (app.signing.identity, shared by the app and the registry)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.domain.errors import VerificationError
from app.signing import dsse
from app.signing.identity import (
    fingerprint_raw,
    load_public_hex,
    public_key_problem,
    public_raw,
    signature_problem,
    verify_strict,
)
from app.signing.rotation import ROTATION_PAYLOAD_TYPE, ROTATION_TYPE, parse_rotation
from app.signing.statement import canonical_json
from tests.support.weak_ed25519 import (
    FORGED_SIGNATURE,
    IDENTITY,
    NON_CANONICAL_HEX,
    NOT_ON_CURVE_HEX,
    SMALL_ORDER_HEX,
    non_canonical_s,
)

MESSAGES = [b"", b"any message at all", b"DSSEv1 5 other 3 xyz"]


def test_the_forgery_is_real_without_the_check() -> None:
    """Why the check exists: OpenSSL alone accepts R = identity, S = 0 under the identity key
    for every message."""
    weak = Ed25519PublicKey.from_public_bytes(IDENTITY)
    for message in MESSAGES:
        weak.verify(FORGED_SIGNATURE, message)  # no InvalidSignature
        with pytest.raises(InvalidSignature):
            verify_strict(weak, FORGED_SIGNATURE, message)


@pytest.mark.parametrize("hex_key", SMALL_ORDER_HEX)
def test_small_order_public_keys_are_refused(hex_key: str) -> None:
    assert "small-order" in (public_key_problem(bytes.fromhex(hex_key)) or "")
    with pytest.raises(VerificationError, match="small-order"):
        load_public_hex(hex_key)


@pytest.mark.parametrize("hex_key", NON_CANONICAL_HEX + NOT_ON_CURVE_HEX)
def test_non_canonical_or_off_curve_public_keys_are_refused(hex_key: str) -> None:
    assert "not a canonically encoded point" in (public_key_problem(bytes.fromhex(hex_key)) or "")
    with pytest.raises(VerificationError, match="refused"):
        load_public_hex(hex_key)


def test_real_keys_and_signatures_pass() -> None:
    for _ in range(50):
        key = Ed25519PrivateKey.generate()
        assert public_key_problem(public_raw(key)) is None
        sig = key.sign(b"m")
        assert signature_problem(sig) is None
        verify_strict(key.public_key(), sig, b"m")


def test_non_canonical_signatures_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    sig = key.sign(b"m")
    assert "not reduced" in (signature_problem(non_canonical_s(sig)) or "")
    with pytest.raises(InvalidSignature):
        verify_strict(key.public_key(), non_canonical_s(sig), b"m")
    for r in SMALL_ORDER_HEX:
        assert "small-order" in (signature_problem(bytes.fromhex(r) + sig[32:]) or "")
    for r in NON_CANONICAL_HEX:
        assert "not a canonically" in (signature_problem(bytes.fromhex(r) + sig[32:]) or "")
    assert "bytes" in (signature_problem(sig[:63]) or "")


def test_dsse_refuses_a_forged_signature_by_a_weak_trusted_key() -> None:
    weak = Ed25519PublicKey.from_public_bytes(IDENTITY)
    keyid = fingerprint_raw(IDENTITY)
    env = dsse.Envelope(
        b'{"any":"payload"}', dsse.PAYLOAD_TYPE_INTOTO, (dsse.Signature(keyid, FORGED_SIGNATURE),)
    )
    with pytest.raises(VerificationError, match="does not match"):
        dsse.verify(env, {keyid: weak}, payload_type=dsse.PAYLOAD_TYPE_INTOTO)


def test_rotation_to_a_small_order_key_is_refused() -> None:
    """The old key signs honestly; the "new key" is the identity point, whose countersignature
    anyone can forge (so nobody would have proven possession of it)."""
    old = Ed25519PrivateKey.generate()
    old_pub = public_raw(old)
    payload = canonical_json(
        {
            "_type": ROTATION_TYPE,
            "oldKey": {"publicKey": old_pub.hex(), "fingerprint": fingerprint_raw(old_pub)},
            "newKey": {"publicKey": IDENTITY.hex(), "fingerprint": fingerprint_raw(IDENTITY)},
            "createdAt": "2026-12-01T00:00:00Z",
        }
    )
    honest = dsse.sign(payload, ROTATION_PAYLOAD_TYPE, [old])
    env = dsse.Envelope(
        payload,
        ROTATION_PAYLOAD_TYPE,
        (*honest.signatures, dsse.Signature(fingerprint_raw(IDENTITY), FORGED_SIGNATURE)),
    )
    with pytest.raises(VerificationError, match="small-order"):
        parse_rotation(env)
