"""Encrypted key file: the only form in which a private key ever touches the disk.

Used when no secure keyring exists, and always for export/backup. scrypt stretches the
passphrase; AES-256-GCM encrypts the 32-byte seed with the public key, fingerprint and KDF
parameters as associated data, so any edit to the file is detected. A separate check value
from the same scrypt output lets us tell "wrong passphrase" apart from "file damaged".
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.domain import boundedjson
from app.domain.errors import IdentityError
from app.domain.limits import MAX_KEY_FILE_BYTES, TooLarge, read_limited
from app.settings import write_private_file
from app.signing.identity import (
    fingerprint,
    fingerprint_raw,
    load_private_raw,
    private_raw,
    public_raw,
)

FORMAT = "contributor-desk/encrypted-key"
VERSION = 1
DEFAULT_N = 2**15
_MIN_LOG2_N, _MAX_LOG2_N = 14, 22  # refuse files that would take forever or be too weak
MIN_PASSPHRASE_LEN = 8


class WrongPassphrase(IdentityError):
    """The passphrase does not open this key file (the file itself is fine): ask again."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(obj: dict[str, Any], field: str, length: int | None, where: Path | str) -> bytes:
    value = obj.get(field)
    if not isinstance(value, str):
        raise _corrupt(where, f"field {field!r} is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _corrupt(where, f"field {field!r} is not valid base64") from None
    if length is not None and len(raw) != length:
        raise _corrupt(where, f"field {field!r} has {len(raw)} bytes, expected {length}")
    return raw


def _corrupt(where: Path | str, detail: str) -> IdentityError:
    return IdentityError(
        f"key file {where} is corrupt: {detail}",
        hint="use another copy of your key backup",
    )


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    out = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return out[:32], out[32:48]  # AES key, passphrase check value


def _aad(kdf: dict[str, Any], public_b64: str, fpr: str) -> bytes:
    bound = {"format": FORMAT, "version": VERSION, "kdf": kdf, "publicKey": public_b64, "fpr": fpr}
    return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode("utf-8")


def check_new_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LEN:
        raise IdentityError(
            f"the passphrase is too short ({len(passphrase)} characters)",
            hint=f"use at least {MIN_PASSPHRASE_LEN} characters",
        )


def encrypt_key(key: Ed25519PrivateKey, passphrase: str, *, n: int = DEFAULT_N) -> bytes:
    """The key file's bytes (JSON) for `key` protected by `passphrase`."""
    check_new_passphrase(passphrase)
    salt, nonce = os.urandom(16), os.urandom(12)
    kdf: dict[str, Any] = {"name": "scrypt", "n": n, "r": 8, "p": 1, "salt": _b64(salt)}
    public_b64 = _b64(public_raw(key))
    fpr = fingerprint(key)
    aes_key, check = _derive(passphrase, salt, n, 8, 1)
    ciphertext = AESGCM(aes_key).encrypt(nonce, private_raw(key), _aad(kdf, public_b64, fpr))
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": kdf,
        "cipher": "aes-256-gcm",
        "nonce": _b64(nonce),
        "check": _b64(check),
        "ciphertext": _b64(ciphertext),
        "publicKey": public_b64,
        "fingerprint": fpr,
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _parse(data: bytes, where: Path | str) -> dict[str, Any]:
    try:
        doc = boundedjson.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _corrupt(where, "it is not a JSON key file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _corrupt(where, "it is not a Contributor Desk key file")
    if doc.get("version") != VERSION:
        raise IdentityError(
            f"key file {where} has version {doc.get('version')!r}; this app reads {VERSION}",
            hint="update Contributor Desk",
        )
    if doc.get("cipher") != "aes-256-gcm":
        raise _corrupt(where, f"unknown cipher {doc.get('cipher')!r}")
    return doc


def key_file_fingerprint(data: bytes, where: Path | str = "(data)") -> str:
    """The fingerprint the file claims, readable without the passphrase (for messages)."""
    doc = _parse(data, where)
    public = _unb64(doc, "publicKey", 32, where)
    return fingerprint_raw(public)


def decrypt_key(data: bytes, passphrase: str, where: Path | str = "(data)") -> Ed25519PrivateKey:
    """Decrypt and check a key file; IdentityError says wrong passphrase vs damaged file."""
    doc = _parse(data, where)
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise _corrupt(where, "unknown key derivation")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise _corrupt(where, "scrypt parameters are not integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if (
        n & (n - 1)
        or not (2**_MIN_LOG2_N <= n <= 2**_MAX_LOG2_N)
        or not (1 <= r <= 32 and 1 <= p <= 16)
    ):
        raise _corrupt(where, f"scrypt parameters out of range (n={n}, r={r}, p={p})")
    salt = _unb64(kdf, "salt", None, where)
    nonce = _unb64(doc, "nonce", 12, where)
    check = _unb64(doc, "check", 16, where)
    ciphertext = _unb64(doc, "ciphertext", None, where)
    public_b64 = doc.get("publicKey")
    public = _unb64(doc, "publicKey", 32, where)
    fpr = doc.get("fingerprint")
    if not isinstance(public_b64, str) or fpr != fingerprint_raw(public):
        raise _corrupt(where, "the fingerprint does not match the public key")
    aes_key, expected_check = _derive(passphrase, salt, n, r, p)
    if not hmac.compare_digest(check, expected_check):
        raise WrongPassphrase(
            f"wrong passphrase for key file {where}",
            hint="type the passphrase you chose when the key file was written",
        )
    try:
        seed = AESGCM(aes_key).decrypt(nonce, ciphertext, _aad(kdf, public_b64, fpr))
    except InvalidTag:
        raise _corrupt(where, "it was modified or damaged (authentication failed)") from None
    key = load_private_raw(seed)
    if public_raw(key) != public:
        raise _corrupt(where, "the private key does not match the public key it names")
    return key


def write_key_file(path: Path, key: Ed25519PrivateKey, passphrase: str) -> None:
    """Atomically write an encrypted key file with mode 0600."""
    write_private_file(path, encrypt_key(key, passphrase))


def read_key_file(path: Path, passphrase: str) -> Ed25519PrivateKey:
    try:
        data = read_limited(path, MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        raise IdentityError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise IdentityError(f"cannot read key file {path}: {exc.strerror}") from None
    except TooLarge:
        raise _corrupt(path, "it is far larger than a key file") from None
    return decrypt_key(data, passphrase, path)
