"""Key material, the keyring judgement and the encrypted key file."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyrings.alt.file import PlaintextKeyring

from app.domain.errors import IdentityError, VerificationError
from app.signing import keyfile
from app.signing.identity import (
    fingerprint,
    grouped,
    load_private_raw,
    load_public_hex,
    private_raw,
    public_raw,
)
from app.signing.keystore import SERVICE_NAME, KeyringUnavailable, KeyStore
from tests.support.keyrings import BrokenKeyring, FileTestKeyring

PASS = "correct horse battery"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_fingerprint_is_sha256_of_raw_public_key(key: Ed25519PrivateKey) -> None:
    fpr = fingerprint(key)
    assert fpr == hashlib.sha256(public_raw(key)).hexdigest()
    assert fingerprint(key.public_key()) == fpr
    g = grouped(fpr)
    assert g.replace(" ", "") == fpr and len(g.split()) == 16
    assert all(len(part) == 4 for part in g.split())


def test_raw_key_round_trip_and_bad_lengths(key: Ed25519PrivateKey) -> None:
    assert fingerprint(load_private_raw(private_raw(key))) == fingerprint(key)
    with pytest.raises(IdentityError, match="31 bytes"):
        load_private_raw(b"\0" * 31)
    assert fingerprint(load_public_hex(public_raw(key).hex())) == fingerprint(key)
    with pytest.raises(VerificationError, match="not hexadecimal"):
        load_public_hex("zz")
    with pytest.raises(VerificationError, match="16 bytes"):
        load_public_hex("00" * 16)


# -- keystore ---------------------------------------------------------------------------------


def test_keystore_round_trip_in_isolated_keyring(
    isolated_keyring: Path, key: Ed25519PrivateKey
) -> None:
    store = KeyStore()
    assert store.status().secure
    assert "FileTestKeyring" in store.backend_name()
    store.store(fingerprint(key), private_raw(key))
    assert store.load(fingerprint(key)) == private_raw(key)
    saved = json.loads((isolated_keyring / "keyring.json").read_text())
    assert saved == {
        f"{SERVICE_NAME}\0{fingerprint(key)}": base64.b64encode(private_raw(key)).decode()
    }
    assert store.delete(fingerprint(key)) is True
    assert store.load(fingerprint(key)) is None
    assert store.delete(fingerprint(key)) is False


class ChainerBackend(KeyringBackend):
    """Shaped like keyring's chainer: judged by its members."""

    priority = 1  # type: ignore[assignment]

    def __init__(self, members: list[KeyringBackend]) -> None:
        super().__init__()
        self.backends = members

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        return None  # the real chainer silently does nothing when no backend takes it

    def delete_password(self, service: str, username: str) -> None:
        return None


def _alt(cls: type[Any], folder: Path) -> Any:
    """A real keyrings.alt file backend writing into `folder` (never the user's data root)."""
    backend = cls()
    backend.file_path = str(folder / f"{cls.__name__}.cfg")
    return backend


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda _d: fail.Keyring(), "keyring.backends.fail.Keyring does not protect secrets"),
        (
            lambda d: _alt(PlaintextKeyring, d),
            "keyrings.alt.file.PlaintextKeyring does not protect secrets",
        ),
        (lambda _d: ChainerBackend([]), "no usable keyring backend"),
        (
            lambda d: ChainerBackend([FileTestKeyring(), _alt(PlaintextKeyring, d)]),
            "PlaintextKeyring",
        ),
    ],
    ids=["fail", "alt-plaintext", "empty-chainer", "chainer-with-plaintext"],
)
def test_insecure_backends_are_refused(
    make: Any, reason: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    backend = make(tmp_path)
    store = KeyStore(backend)
    status = store.status()
    assert not status.secure
    assert reason in status.reason
    with pytest.raises(KeyringUnavailable, match="no secure keyring"):
        store.store(fingerprint(key), private_raw(key))
    assert list(tmp_path.iterdir()) == []  # nothing was written, not even briefly


def test_real_plaintext_keyring_would_store_the_key_in_clear(tmp_path: Path) -> None:
    """Why it is refused: the real backend writes what it is given to a readable file."""
    backend = _alt(PlaintextKeyring, tmp_path)
    backend.set_password(SERVICE_NAME, "probe", "secret-value-123")
    assert backend.get_password(SERVICE_NAME, "probe") == "secret-value-123"
    stored = (tmp_path / "PlaintextKeyring.cfg").read_text("utf-8")
    assert base64.b64encode(b"secret-value-123").decode() in stored


def test_chainer_of_secure_backends_is_accepted(isolated_keyring: Path) -> None:
    assert KeyStore(ChainerBackend([FileTestKeyring()])).status().secure


def test_chainer_that_silently_drops_the_key_is_caught(
    isolated_keyring: Path, key: Ed25519PrivateKey
) -> None:
    class Dropper(ChainerBackend):
        pass

    Dropper.__name__ = "ChainerBackend"
    store = KeyStore(Dropper([FileTestKeyring()]))
    with pytest.raises(KeyringUnavailable, match="did not keep the key"):
        store.store(fingerprint(key), private_raw(key))


def test_locked_keyring(isolated_keyring: Path, key: Ed25519PrivateKey) -> None:
    store = KeyStore()
    store.store(fingerprint(key), private_raw(key))
    (isolated_keyring / "LOCKED").touch()
    with pytest.raises(IdentityError, match="is locked"):
        store.load(fingerprint(key))
    with pytest.raises(KeyringUnavailable, match="is locked") as info:
        store.store(fingerprint(key), private_raw(key))
    assert info.value.locked


def test_broken_backend_is_reported_not_crashing(key: Ed25519PrivateKey) -> None:
    store = KeyStore(BrokenKeyring())
    with pytest.raises(KeyringUnavailable, match="refused the key: KeyringError"):
        store.store(fingerprint(key), private_raw(key))
    with pytest.raises(IdentityError, match="cannot read the keyring"):
        store.load(fingerprint(key))


def test_damaged_keyring_entry(isolated_keyring: Path) -> None:
    backend = FileTestKeyring()
    backend.set_password(SERVICE_NAME, "f", "not base64!")
    with pytest.raises(IdentityError, match="damaged"):
        KeyStore(backend).load("f")
    backend.set_password(SERVICE_NAME, "f", base64.b64encode(b"short").decode())
    with pytest.raises(IdentityError, match="wrong length"):
        KeyStore(backend).load("f")


# -- encrypted key file -----------------------------------------------------------------------


def test_key_file_round_trip(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "k.key"
    keyfile.write_key_file(path, key, PASS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["kdf"]["name"] == "scrypt" and doc["kdf"]["n"] >= 2**15
    assert doc["kdf"]["r"] == 8 and doc["kdf"]["p"] == 1
    assert doc["cipher"] == "aes-256-gcm" and doc["fingerprint"] == fingerprint(key)
    assert fingerprint(keyfile.read_key_file(path, PASS)) == fingerprint(key)
    assert keyfile.key_file_fingerprint(path.read_bytes()) == fingerprint(key)
    data = path.read_bytes()
    raw = private_raw(key)
    for needle in (raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")):
        assert needle not in data


def test_wrong_passphrase(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "k.key"
    keyfile.write_key_file(path, key, PASS)
    with pytest.raises(keyfile.WrongPassphrase, match="wrong passphrase for key file"):
        keyfile.read_key_file(path, PASS + "!")


def test_short_passphrase_refused(key: Ed25519PrivateKey) -> None:
    with pytest.raises(IdentityError, match="too short"):
        keyfile.encrypt_key(key, "short")


def _tampered(key: Ed25519PrivateKey, change: Any) -> bytes:
    doc = json.loads(keyfile.encrypt_key(key, PASS))
    change(doc)
    return json.dumps(doc).encode()


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(ciphertext=_flip_b64(d["ciphertext"])), "modified or damaged"),
        (lambda d: d.update(nonce=_flip_b64(d["nonce"])), "modified or damaged"),
        (lambda d: d.update(check=_flip_b64(d["check"])), "wrong passphrase"),
        (lambda d: d["kdf"].update(salt=_flip_b64(d["kdf"]["salt"])), "wrong passphrase"),
        (lambda d: d["kdf"].update(n=2**30), "out of range"),
        (lambda d: d["kdf"].update(n=3 * 2**14), "out of range"),
        (lambda d: d["kdf"].update(r="8"), "not integers"),
        (lambda d: d.update(fingerprint="00" * 32), "fingerprint does not match"),
        (lambda d: d.pop("ciphertext"), "'ciphertext' is missing"),
        (lambda d: d.update(nonce="!!"), "not valid base64"),
        (lambda d: d.update(format="other"), "not a Contributor Desk key file"),
        (lambda d: d.update(cipher="rot13"), "unknown cipher"),
    ],
)
def test_corrupt_key_file(key: Ed25519PrivateKey, change: Any, message: str) -> None:
    with pytest.raises(IdentityError, match=message) as err:
        keyfile.decrypt_key(_tampered(key, change), PASS)
    # Only a wrong passphrase is worth asking again for; a damaged file is not.
    assert isinstance(err.value, keyfile.WrongPassphrase) == (message == "wrong passphrase")


def test_swapped_public_key_is_detected(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    pub = base64.b64encode(public_raw(other)).decode()

    def swap(d: dict[str, Any]) -> None:
        d.update(publicKey=pub, fingerprint=fingerprint(other))

    with pytest.raises(IdentityError, match="modified or damaged"):
        keyfile.decrypt_key(_tampered(key, swap), PASS)


@pytest.mark.parametrize("data", [b"", b"\xff\xfe", b"[1]", b'{"format": 1}'])
def test_not_a_key_file(data: bytes) -> None:
    with pytest.raises(IdentityError, match="is corrupt"):
        keyfile.decrypt_key(data, PASS)


def test_newer_version_is_explained(key: Ed25519PrivateKey) -> None:
    with pytest.raises(IdentityError, match="has version 2"):
        keyfile.decrypt_key(_tampered(key, lambda d: d.update(version=2)), PASS)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="does not exist"):
        keyfile.read_key_file(tmp_path / "nope.key", PASS)
