"""Ed25519 key material and its fingerprint: the contributor's identity in one small module.

The fingerprint (hex SHA-256 of the raw 32-byte public key) is also the DSSE keyid, so the
registry, the envelope and the user's screen all name a key the same way.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.domain.errors import IdentityError, VerificationError

KEY_ALGORITHM = "ed25519"
RAW_KEY_LEN = 32
SIGNATURE_LEN = 64
_GROUP = 4

# Curve25519 in Edwards form (RFC 8032 5.1): field prime, group order, curve constant.
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


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
    return load_public_raw(raw)


def _decode_point(raw: bytes) -> _Point | None:
    """RFC 8032 5.1.3 point decoding, strict: None for a y >= p, a "-0" x, or no point."""
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vxx = v * x * x % _P
    if vxx == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif vxx != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _double(point: _Point) -> _Point:
    x1, y1, z1, _t1 = point
    a, b, c = x1 * x1 % _P, y1 * y1 % _P, 2 * z1 * z1 % _P
    h = (a + b) % _P
    e = (h - (x1 + y1) * (x1 + y1)) % _P
    g = (a - b) % _P
    f = (c + g) % _P
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _is_small_order(point: _Point) -> bool:
    """8·P is the neutral element: P is one of the 8 points whose multiples are all in the
    torsion subgroup, so a "signature" with such a key or R can be made without any secret."""
    for _ in range(3):
        point = _double(point)
    x, y, z, _t = point
    return x % _P == 0 and (y - z) % _P == 0


def public_key_problem(raw: bytes) -> str | None:
    """Why `raw` cannot be anyone's Ed25519 public key, or None if it can.

    Refused: wrong length, an encoding that is not canonical or not a curve point, and the
    small-order points (for those, one forged signature verifies every message)."""
    if len(raw) != RAW_KEY_LEN:
        return f"it has {len(raw)} bytes, an Ed25519 public key has {RAW_KEY_LEN}"
    point = _decode_point(raw)
    if point is None:
        return "it is not a canonically encoded point of the Ed25519 curve"
    if _is_small_order(point):
        return "it is a small-order point (a weak key that anyone could sign for)"
    return None


def signature_problem(sig: bytes) -> str | None:
    """Why `sig` is not a canonical Ed25519 signature (R a canonical point of large order,
    S below the group order), or None. Malleable or forgeable encodings are refused before
    the cryptographic check."""
    if len(sig) != SIGNATURE_LEN:
        return f"it has {len(sig)} bytes, an Ed25519 signature has {SIGNATURE_LEN}"
    if int.from_bytes(sig[32:], "little") >= _L:
        return "its S value is not reduced (non-canonical signature)"
    point = _decode_point(sig[:32])
    if point is None:
        return "its R value is not a canonically encoded curve point"
    if _is_small_order(point):
        return "its R value is a small-order point"
    return None


def load_public_raw(raw: bytes) -> Ed25519PublicKey:
    """The public key for `raw` after public_key_problem(); VerificationError if refused."""
    reason = public_key_problem(raw)
    if reason is not None:
        raise VerificationError(f"public key refused: {reason}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_strict(key: Ed25519PublicKey, sig: bytes, message: bytes) -> None:
    """Ed25519 verification that also refuses weak keys and non-canonical signatures (the
    check every signature in the app and the registry goes through); InvalidSignature."""
    if public_key_problem(public_raw(key)) is not None or signature_problem(sig) is not None:
        raise InvalidSignature
    key.verify(sig, message)
