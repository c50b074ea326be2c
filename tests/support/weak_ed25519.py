"""Ed25519 public keys and signatures that must never verify: small-order points (for which a
"signature" can be made without any secret) and non-canonical encodings.

The small-order encodings are the canonical points of order 1, 2, 4 and 8 (as listed by
libsodium's blocklist and "Taming the many EdDSAs", Brendel et al., 2020).
"""

from __future__ import annotations

L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19

IDENTITY = bytes([1]) + bytes(31)
SMALL_ORDER_HEX = (
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity (order 1)
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
)
NON_CANONICAL_HEX = (
    (P).to_bytes(32, "little").hex(),  # y = p (that is y = 0, written out of range)
    (P + 1).to_bytes(32, "little").hex(),  # y = p + 1 (the identity, out of range)
    (1 | 1 << 255).to_bytes(32, "little").hex(),  # identity with the sign bit of x = 0 set
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
)
NOT_ON_CURVE_HEX = ("0200000000000000000000000000000000000000000000000000000000000000",)

# With the identity as public key, R = identity and S = 0 "verify" every message.
FORGED_SIGNATURE = IDENTITY + bytes(32)


def non_canonical_s(signature: bytes) -> bytes:
    """The same signature with S + L in place of S: equal modulo L, so a lax verifier
    accepts it too (malleability)."""
    s = int.from_bytes(signature[32:], "little") + L
    return signature[:32] + s.to_bytes(32, "little")
