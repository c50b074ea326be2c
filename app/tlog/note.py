"""C2SP signed notes with Ed25519 keys, and their key formats.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> base64(key ID || signature)``. The key ID is
``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` for Ed25519 (signature type 0x01).
Verifier keys are written ``<name>+<key ID as 8 hex digits>+base64(0x01 || public key)``,
signer keys ``PRIVATE+KEY+<name>+<key ID>+base64(0x01 || 32-byte seed)``: the formats of the
Go reference implementation (golang.org/x/mod/sumdb/note), which any tlog tool reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from app.tlog.errors import MalformedError, SignatureError

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
MAX_KEY_CHARS = 1024


def _b64decode(s: str, what: str) -> bytes:
    """Standard base64, canonical (what it decodes to re-encodes to the same text)."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise MalformedError(f"{what} is not canonical base64")
    return raw


def valid_key_name(name: str) -> bool:
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() for c in name)
        and (not any(ord(c) < 0x20 for c in name))
    )


def key_id(name: str, alg: int, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    signature: bytes  # without the 4-byte key ID

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedError("note text must end with a newline")
    for c in text:
        if ord(c) < 0x20 and c != "\n":
            raise MalformedError("note contains a control character")


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signatures; strict, nothing verified yet."""
    if len(data) > MAX_NOTE_BYTES:
        raise MalformedError(f"note of {len(data)} bytes, more than {MAX_NOTE_BYTES}")
    try:
        msg = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("note is not UTF-8") from None
    for c in msg:
        if ord(c) < 0x20 and c != "\n":
            raise MalformedError("note contains a control character")
    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedError("note has no blank line before its signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedError("note has no signature lines")
    sigs: list[Signature] = []
    for line in block[:-1].split("\n"):
        if len(sigs) == MAX_SIGNATURES:
            raise MalformedError(f"note has more than {MAX_SIGNATURES} signatures")
        if not line.startswith(SIG_PREFIX):
            raise MalformedError("note signature line does not start with an em dash and space")
        name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
        if not sep or not valid_key_name(name) or not b64:
            raise MalformedError("malformed note signature line")
        blob = _b64decode(b64, "note signature")
        if len(blob) < 5:
            raise MalformedError("note signature is too short")
        sigs.append(Signature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return Note(text, tuple(sigs))


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier: a key name and public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise MalformedError(f"invalid key name {self.name[:100]!r}")
        if len(self.public_key) != 32:
            raise MalformedError("an Ed25519 public key has 32 bytes")

    @property
    def key_id(self) -> int:
        return key_id(self.name, ALG_ED25519, self.public_key)

    @property
    def vkey(self) -> str:
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{b64}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``name+hash+key``; the hash must be the key ID of that name and key."""
        if len(vkey) > MAX_KEY_CHARS:
            raise MalformedError("verifier key is too long")
        parts = vkey.split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise MalformedError("a verifier key has the form name+hash+key")
        name, hash_hex, b64 = parts
        raw = _b64decode(b64, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise MalformedError("verifier key is not an Ed25519 key (algorithm 0x01, 32 bytes)")
        v = cls(name, raw[1:])
        if len(hash_hex) != 8 or hash_hex != f"{v.key_id:08x}":
            raise MalformedError(f"verifier key hash {hash_hex[:16]!r} does not match its key")
        return v

    def verify(self, text: str, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature, text.encode("utf-8")
            )
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """An Ed25519 note signer. Holds a private key: never log it or its ``skey``."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not valid_key_name(name):
            raise MalformedError(f"invalid key name {name[:100]!r}")
        self.name = name
        self._key = private_key
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, public)

    def __repr__(self) -> str:
        return f"Signer({self.verifier.vkey!r})"

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    @property
    def skey(self) -> str:
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        b64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64}"

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        if len(skey) > MAX_KEY_CHARS:
            raise MalformedError("signer key is too long")
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise MalformedError("a signer key has the form PRIVATE+KEY+name+hash+key")
        _, _, name, hash_hex, b64 = parts
        raw = _b64decode(b64, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise MalformedError("signer key is not an Ed25519 key (algorithm 0x01, 32 bytes)")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if len(hash_hex) != 8 or hash_hex != f"{signer.key_id:08x}":
            raise MalformedError("signer key hash does not match its key")
        return signer

    def sign(self, text: str) -> Signature:
        _check_text(text)
        return Signature(self.name, self.key_id, self._key.sign(text.encode("utf-8")))


def sign_note(text: str, *signers: Signer) -> bytes:
    """The signed note of ``text`` (which must end in a newline) by each signer."""
    if not signers:
        raise MalformedError("a signed note needs at least one signer")
    return Note(text, tuple(s.sign(text) for s in signers)).to_bytes()


def open_note(data: bytes, verifiers: list[Verifier] | tuple[Verifier, ...]) -> Note:
    """Parse and verify a note: the returned note keeps only signatures by known keys, all
    verified. Unknown keys are ignored (key rotation, witnesses); a known key's bad signature
    rejects the note; so does a note without any known key's signature."""
    note = parse_note(data)
    _check_text(note.text)
    known = {(v.name, v.key_id): v for v in verifiers}
    good: list[Signature] = []
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None or sig in good:
            continue
        if not v.verify(note.text, sig.signature):
            raise SignatureError(f"bad signature by the log key {v.name}+{v.key_id:08x}")
        good.append(sig)
    if not good:
        names = ", ".join(f"{v.name}+{v.key_id:08x}" for v in verifiers) or "none"
        raise SignatureError(f"note is not signed by a known key (known: {names})")
    return Note(note.text, tuple(good))
