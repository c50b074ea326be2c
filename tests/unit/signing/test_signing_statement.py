"""The in-toto statement (what a contribution signature says) and key rotation statements."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain.errors import VerificationError
from app.signing import dsse, rotation
from app.signing.identity import fingerprint, public_hex
from app.signing.statement import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    build_statement,
    check_statement,
    parse_statement,
)

DIGEST = "a" * 64
ROOT = "b" * 64
REGISTRY = "https://registry.example/"


def _statement(**over: Any) -> bytes:
    args: dict[str, Any] = {
        "manifest_digest": DIGEST,
        "registry": REGISTRY,
        "datanet": "medical-imaging",
        "title": "Chest X-rays — café",
        "kind": "dataset",
        "parent": None,
        "license": "CC-BY-4.0",
        "root": ROOT,
        "created_at": "2026-11-26T08:00:00Z",
    }
    args.update(over)
    return build_statement(**args)


def test_statement_shape_is_exactly_as_designed() -> None:
    payload = _statement()
    obj = json.loads(payload)
    assert obj == {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "manifest.json", "digest": {"sha256": DIGEST}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "registry": "https://registry.example",
            "datanet": "medical-imaging",
            "title": "Chest X-rays — café",
            "kind": "dataset",
            "parent": None,
            "license": "CC-BY-4.0",
            "root": ROOT,
            "createdAt": "2026-11-26T08:00:00Z",
        },
    }
    # canonical: sorted keys, no whitespace, UTF-8 not escaped
    assert payload == json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    parsed = parse_statement(payload)
    assert parsed.manifest_digest == DIGEST
    assert parsed.predicate.title == "Chest X-rays — café"
    check_statement(
        parsed,
        manifest_digest=DIGEST,
        registry="https://registry.example",
        datanet="medical-imaging",
        root=ROOT,
    )


def test_build_refuses_non_digest_values() -> None:
    with pytest.raises(ValueError, match="sha256"):
        _statement(manifest_digest="xyz")


def test_statement_for_another_registry_is_a_replay() -> None:
    parsed = parse_statement(_statement())
    with pytest.raises(VerificationError, match=r"another registry \(replay\)"):
        check_statement(parsed, registry="https://evil.example")
    check_statement(parsed, registry="https://registry.example///")  # trailing slashes ok


def test_statement_for_another_datanet_is_a_replay() -> None:
    with pytest.raises(VerificationError, match=r"another datanet \(replay\)"):
        check_statement(parse_statement(_statement()), datanet="finance")


def test_manifest_digest_and_root_mismatch() -> None:
    parsed = parse_statement(_statement())
    with pytest.raises(VerificationError, match="manifest does not match"):
        check_statement(parsed, manifest_digest="c" * 64)
    with pytest.raises(VerificationError, match="differs from the signed root"):
        check_statement(parsed, root="c" * 64)


def _mutated(change: Any) -> bytes:
    obj = json.loads(_statement())
    change(obj)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.update(_type="https://in-toto.io/Statement/v0.1"), "statement type"),
        (lambda o: o.update(predicateType="https://slsa.dev/provenance/v1"), "predicateType"),
        (lambda o: o.update(subject=[]), "exactly one subject"),
        (lambda o: o["subject"][0].update(name="other.json"), "not the manifest"),
        (lambda o: o["subject"][0].update(digest={"sha512": "x"}), "no sha256"),
        (lambda o: o.update(predicate=[]), "no predicate"),
        (lambda o: o["predicate"].pop("registry"), "no 'registry'"),
        (lambda o: o["predicate"].update(title=5), "'title' is not a string"),
        (lambda o: o["predicate"].update(root="nothex"), "'root' is not a sha256"),
    ],
)
def test_bad_statements_are_rejected(change: Any, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        parse_statement(_mutated(change))


@pytest.mark.parametrize("payload", [b"\xff", b"not json", b"[]"])
def test_non_statement_payloads(payload: bytes) -> None:
    with pytest.raises(VerificationError, match="payload is not a JSON"):
        parse_statement(payload)


# -- rotation ---------------------------------------------------------------------------------


def test_rotation_links_old_and_new_key() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    env = rotation.build_rotation(old, new, created_at="2026-11-26T08:00:00Z")
    assert env.payload_type == rotation.ROTATION_PAYLOAD_TYPE
    assert [s.keyid for s in env.signatures] == [fingerprint(old), fingerprint(new)]
    as_json = json.loads(env.to_json())
    assert rotation.verify_rotation(as_json) == (fingerprint(old), fingerprint(new))
    assert rotation.verify_rotation(env, expected_old=fingerprint(old))
    payload = json.loads(env.payload)
    assert payload["oldKey"] == {"publicKey": public_hex(old), "fingerprint": fingerprint(old)}
    assert payload["newKey"]["publicKey"] == public_hex(new)
    # Old signatures still verify against the old public key after the rotation.
    signed = dsse.sign(b"old work", dsse.PAYLOAD_TYPE_INTOTO, [old])
    trusted = {fingerprint(old): old.public_key()}
    assert dsse.verify(signed, trusted, payload_type=dsse.PAYLOAD_TYPE_INTOTO)


def test_rotation_needs_both_signatures() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    env = rotation.build_rotation(old, new)
    only_old = dsse.Envelope(env.payload, env.payload_type, env.signatures[:1])
    with pytest.raises(VerificationError, match="has 1 signatures"):
        rotation.verify_rotation(only_old)
    stranger = Ed25519PrivateKey.generate()
    wrong = dsse.sign(env.payload, env.payload_type, [old, stranger])
    with pytest.raises(VerificationError, match="unknown key"):
        rotation.verify_rotation(wrong)


def test_rotation_by_someone_else_is_rejected() -> None:
    """An attacker cannot claim a victim's key rotated to theirs: the old key must sign."""
    victim, attacker = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    env = rotation.build_rotation(victim, attacker)
    forged_sig = dsse.sign(env.payload, env.payload_type, [attacker]).signatures[0]
    forged = dsse.Envelope(
        env.payload,
        env.payload_type,
        (dsse.Signature(fingerprint(victim), forged_sig.sig), forged_sig),
    )
    with pytest.raises(VerificationError, match="does not match the payload"):
        rotation.verify_rotation(forged)


def test_tampered_rotation_and_wrong_expectations() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    env = rotation.build_rotation(old, new)
    # Only the time is changed (a bare replace of "2026" could also hit a key's hex, which then
    # fails as a bad point, and would change nothing in another year).
    assert env.payload.count(b'"createdAt":"2') == 1
    tampered = dsse.Envelope(
        env.payload.replace(b'"createdAt":"2', b'"createdAt":"1'), env.payload_type, env.signatures
    )
    with pytest.raises(VerificationError, match="does not match the payload"):
        rotation.verify_rotation(tampered)
    with pytest.raises(VerificationError, match="rotation is from key"):
        rotation.verify_rotation(env, expected_old=fingerprint(new))
    retyped = dsse.Envelope(env.payload, dsse.PAYLOAD_TYPE_INTOTO, env.signatures)
    with pytest.raises(VerificationError, match="payloadType"):
        rotation.verify_rotation(retyped)
    obj = json.loads(env.payload)
    obj["newKey"]["fingerprint"] = "0" * 64
    bad = dsse.sign(json.dumps(obj).encode(), env.payload_type, [old, new])
    with pytest.raises(VerificationError, match="fingerprint does not match"):
        rotation.verify_rotation(bad)
    with pytest.raises(ValueError, match="itself"):
        rotation.build_rotation(old, old)
