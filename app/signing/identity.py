"""Ed25519 key material and its fingerprint: the contributor's identity in one small module.

The fingerprint (hex SHA-256 of the raw 32-byte public key) is also the DSSE keyid, so the
registry, the envelope and the user's screen all name a key the same way.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.domain.errors import IdentityError, VerificationError

KEY_ALGORITHM = "ed25519"
RAW_KEY_LEN = 32
SIGNATURE_LEN = 64
_GROUP = 4


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_raw(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte seed; callers must only hand it to the keystore or the key-file encrypter."""
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def public_raw(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_hex(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    return public_raw(key).hex()


def fingerprint_raw(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()


def fingerprint(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Hex SHA-256 of the raw public key; also used as DSSE keyid."""
    return fingerprint_raw(public_raw(key))


def grouped(fpr: str) -> str:
    """The full fingerprint in 16 groups of 4 hex digits, so people can compare it aloud."""
    fpr = fpr.lower()
    return " ".join(fpr[i : i + _GROUP] for i in range(0, len(fpr), _GROUP))


def load_private_raw(raw: bytes) -> Ed25519PrivateKey:
    if len(raw) != RAW_KEY_LEN:
        raise IdentityError(
            f"stored private key has {len(raw)} bytes, an Ed25519 key has {RAW_KEY_LEN}",
            hint="restore the key from your backup with `identity import`",
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_hex(text: str) -> Ed25519PublicKey:
    """Parse a hex public key as written by `identity show`; bad input is the caller's data."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise VerificationError(f"public key {text[:20]!r} is not hexadecimal") from None
    if len(raw) != RAW_KEY_LEN:
        raise VerificationError(
            f"public key has {len(raw)} bytes, an Ed25519 public key has {RAW_KEY_LEN}"
        )
    return Ed25519PublicKey.from_public_bytes(raw)
