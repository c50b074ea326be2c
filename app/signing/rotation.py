"""Key rotation statements: how a registry links a contributor's new key to the old one.

Format (a DSSE envelope, verified with app.signing.dsse):

    payloadType: "application/vnd.contributor-desk.key-rotation+json"
    payload (canonical JSON, UTF-8, sorted keys, no whitespace):
        {"_type": "https://contributor-desk.dev/key-rotation/v1",
         "oldKey": {"publicKey": <hex raw 32 bytes>, "fingerprint": <hex sha256(raw)>},
         "newKey": {"publicKey": <hex>, "fingerprint": <hex>},
         "createdAt": "YYYY-MM-DDTHH:MM:SSZ"}
    signatures: exactly two, keyid = fingerprint —
        the old key (authorises the new one) and the new key (proves possession of it).

Old signatures keep verifying against the old public key; the statement only says "from
createdAt on, the holder of oldKey also speaks as newKey".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.domain import boundedjson
from app.domain.errors import VerificationError
from app.signing import dsse
from app.signing.identity import fingerprint, load_public_hex, public_hex
from app.signing.statement import canonical_json, utc_timestamp

ROTATION_PAYLOAD_TYPE = "application/vnd.contributor-desk.key-rotation+json"
ROTATION_TYPE = "https://contributor-desk.dev/key-rotation/v1"


@dataclass(frozen=True, slots=True)
class Rotation:
    old_fingerprint: str
    new_fingerprint: str
    old_public_key: str
    new_public_key: str
    created_at: str


def build_rotation(
    old: Ed25519PrivateKey, new: Ed25519PrivateKey, *, created_at: str | None = None
) -> dsse.Envelope:
    """Rotation envelope signed by the old key and countersigned by the new key."""
    if fingerprint(old) == fingerprint(new):
        raise ValueError("a key cannot rotate to itself")
    payload = canonical_json(
        {
            "_type": ROTATION_TYPE,
            "oldKey": {"publicKey": public_hex(old), "fingerprint": fingerprint(old)},
            "newKey": {"publicKey": public_hex(new), "fingerprint": fingerprint(new)},
            "createdAt": created_at or utc_timestamp(),
        }
    )
    return dsse.sign(payload, ROTATION_PAYLOAD_TYPE, [old, new])


def _key(obj: dict[str, Any], field: str) -> tuple[str, str, Ed25519PublicKey]:
    entry = obj.get(field)
    if not isinstance(entry, dict):
        raise VerificationError(f"rotation statement has no {field!r}")
    pub_hex, fpr = entry.get("publicKey"), entry.get("fingerprint")
    if not isinstance(pub_hex, str) or not isinstance(fpr, str):
        raise VerificationError(f"rotation statement {field!r} lacks publicKey/fingerprint")
    key = load_public_hex(pub_hex)
    if fingerprint(key) != fpr:
        raise VerificationError(f"rotation statement {field!r} fingerprint does not match its key")
    return pub_hex.lower(), fpr, key


def parse_rotation(envelope: dsse.Envelope) -> Rotation:
    """Verify both signatures over the received payload and return who rotated to whom."""
    if envelope.payload_type != ROTATION_PAYLOAD_TYPE:
        raise VerificationError(
            f"payloadType is {envelope.payload_type!r}, expected {ROTATION_PAYLOAD_TYPE!r}"
        )
    try:
        obj = boundedjson.loads(envelope.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise VerificationError("rotation payload is not JSON") from None
    if not isinstance(obj, dict) or obj.get("_type") != ROTATION_TYPE:
        raise VerificationError("payload is not a key-rotation statement")
    created_at = obj.get("createdAt")
    if not isinstance(created_at, str):
        raise VerificationError("rotation statement has no createdAt")
    old_hex, old_fpr, old_key = _key(obj, "oldKey")
    new_hex, new_fpr, new_key = _key(obj, "newKey")
    if old_fpr == new_fpr:
        raise VerificationError("rotation statement rotates a key to itself")
    if len(envelope.signatures) != 2:
        raise VerificationError(
            f"rotation envelope has {len(envelope.signatures)} signatures; "
            "it needs exactly the old and the new key's"
        )
    dsse.verify(
        envelope,
        {old_fpr: old_key, new_fpr: new_key},
        payload_type=ROTATION_PAYLOAD_TYPE,
        required=[old_fpr, new_fpr],
    )
    return Rotation(old_fpr, new_fpr, old_hex, new_hex, created_at)


def verify_rotation(
    envelope: dsse.Envelope | dict[str, Any], *, expected_old: str | None = None
) -> tuple[str, str]:
    """(old_fingerprint, new_fingerprint) of a valid rotation; VerificationError otherwise."""
    env = envelope if isinstance(envelope, dsse.Envelope) else dsse.Envelope.from_dict(envelope)
    rotation = parse_rotation(env)
    if expected_old is not None and rotation.old_fingerprint != expected_old:
        raise VerificationError(
            f"rotation is from key {rotation.old_fingerprint}, expected {expected_old}"
        )
    return rotation.old_fingerprint, rotation.new_fingerprint
