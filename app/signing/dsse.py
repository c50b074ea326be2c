"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, protocol v1) with Ed25519.

Written once here and imported by the registry, so both sides sign and verify identically.
Verification always runs over the payload bytes exactly as received (base64-decoded), never
over re-serialised JSON, and every refusal says precisely why.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.domain import boundedjson
from app.domain.errors import VerificationError
from app.signing.identity import SIGNATURE_LEN, fingerprint, verify_strict

PAYLOAD_TYPE_INTOTO = "application/vnd.in-toto+json"

_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL = re.compile(r"[A-Za-z0-9\-_]*={0,2}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def b64decode_strict(text: str, what: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; refuse anything else.

    DSSE allows either alphabet. Mixed alphabets, stray characters, impossible lengths and
    non-canonical trailing bits are refused, so one envelope has exactly one meaning.
    """
    if _STD.fullmatch(text):
        alphabet = "standard"
    elif _URL.fullmatch(text):
        alphabet = "url-safe"
    else:
        raise VerificationError(f"{what} is not valid base64 (unexpected characters)")
    body = text.rstrip("=")
    padding = len(text) - len(body)
    if len(body) % 4 == 1:
        raise VerificationError(f"{what} is not valid base64 (truncated: impossible length)")
    expected_padding = (-len(body)) % 4
    if padding and padding != expected_padding:
        raise VerificationError(f"{what} is not valid base64 (wrong padding)")
    padded = body + "=" * expected_padding
    try:
        if alphabet == "standard":
            raw = base64.b64decode(padded, validate=True)
            again = base64.b64encode(raw).decode("ascii")
        else:
            raw = base64.urlsafe_b64decode(padded)
            again = base64.urlsafe_b64encode(raw).decode("ascii")
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not valid base64") from None
    if again != padded:
        raise VerificationError(f"{what} is not valid base64 (truncated or non-canonical)")
    return raw


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope; `payload` holds the exact received bytes."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.keyid, "sig": b64encode(s.sig)} for s in self.signatures],
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, obj: object) -> Envelope:
        """Parse the JSON shape strictly; signatures are decoded but not yet verified."""
        if not isinstance(obj, dict):
            raise VerificationError("envelope is not a JSON object")
        for field in ("payload", "payloadType", "signatures"):
            if field not in obj:
                raise VerificationError(f"envelope has no {field!r} field")
        payload_b64, payload_type, sigs = obj["payload"], obj["payloadType"], obj["signatures"]
        if not isinstance(payload_b64, str):
            raise VerificationError("envelope 'payload' is not a string")
        if not isinstance(payload_type, str) or not payload_type:
            raise VerificationError("envelope 'payloadType' is not a non-empty string")
        if not isinstance(sigs, list) or not sigs:
            raise VerificationError("envelope has no signatures")
        payload = b64decode_strict(payload_b64, "envelope payload")
        parsed: list[Signature] = []
        seen: set[str] = set()
        for i, entry in enumerate(sigs):
            if not isinstance(entry, dict):
                raise VerificationError(f"signature #{i + 1} is not a JSON object")
            keyid, sig = entry.get("keyid"), entry.get("sig")
            if not isinstance(keyid, str) or not keyid:
                raise VerificationError(f"signature #{i + 1} has no keyid")
            if not isinstance(sig, str):
                raise VerificationError(f"signature #{i + 1} has no 'sig' string")
            if keyid in seen:
                raise VerificationError(f"duplicate signatures by key {keyid}")
            seen.add(keyid)
            raw = b64decode_strict(sig, f"signature #{i + 1}")
            if len(raw) != SIGNATURE_LEN:
                raise VerificationError(
                    f"signature #{i + 1} has {len(raw)} bytes; "
                    f"an Ed25519 signature has {SIGNATURE_LEN} (truncated?)"
                )
            parsed.append(Signature(keyid, raw))
        return cls(payload, payload_type, tuple(parsed))

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        try:
            obj = boundedjson.loads(data.decode("utf-8"))
        except boundedjson.JsonLimitError as exc:
            raise VerificationError(f"envelope is not valid JSON: {exc}") from None
        except (UnicodeDecodeError, ValueError):
            raise VerificationError("envelope is not valid JSON") from None
        return cls.from_dict(obj)


def sign(payload: bytes, payload_type: str, keys: Sequence[Ed25519PrivateKey]) -> Envelope:
    """Sign PAE(payload_type, payload) with each key; keyid = the key's fingerprint."""
    message = pae(payload_type, payload)
    sigs = tuple(Signature(fingerprint(k), k.sign(message)) for k in keys)
    if len({s.keyid for s in sigs}) != len(sigs):
        raise ValueError("the same key was given twice")
    return Envelope(payload, payload_type, sigs)


def verify(
    envelope: Envelope,
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    payload_type: str,
    required: Sequence[str] | None = None,
) -> list[str]:
    """Check every signature; return the keyids that verified, in envelope order.

    Every signature must come from a trusted key and verify (an unknown or bad signature is
    refused rather than ignored: nothing unexplained rides along in a contribution). Keys in
    `required` (default: at least one trusted key) must all have signed.
    """
    if envelope.payload_type != payload_type:
        raise VerificationError(
            f"payloadType is {envelope.payload_type!r}, expected {payload_type!r}"
        )
    if not envelope.signatures:
        raise VerificationError("envelope has no signatures")
    message = pae(envelope.payload_type, envelope.payload)
    verified: list[str] = []
    for s in envelope.signatures:
        if s.keyid in verified:
            raise VerificationError(f"duplicate signatures by key {s.keyid}")
        key = trusted.get(s.keyid)
        if key is None:
            raise VerificationError(f"signature by unknown key {s.keyid}")
        if fingerprint(key) != s.keyid:
            raise VerificationError(f"trusted key for {s.keyid} has a different fingerprint")
        try:
            verify_strict(key, s.sig, message)
        except InvalidSignature:
            raise VerificationError(
                f"signature by key {s.keyid} does not match the payload "
                "(payload, payloadType or signature was altered, or another key signed)"
            ) from None
        verified.append(s.keyid)
    for keyid in required or ():
        if keyid not in verified:
            raise VerificationError(f"envelope is not signed by required key {keyid}")
    return verified
