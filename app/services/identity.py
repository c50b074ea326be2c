"""Identity use cases: create, show, back up, restore and rotate the contributor's key.

The private key lives in the OS keyring when that keyring is trustworthy; otherwise (fail,
plaintext, locked) only in an encrypted key file protected by the user's passphrase, and the
user is told so. The public key and fingerprint go in the catalogue (Identity table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import IdentityError
from app.services.context import ServiceContext
from app.settings import write_private_file
from app.signing import keyfile
from app.signing.identity import (
    fingerprint,
    generate_private_key,
    grouped,
    load_private_raw,
    load_public_hex,
    private_raw,
    public_hex,
)
from app.signing.keystore import KeyringUnavailable, KeyStore
from app.signing.rotation import build_rotation
from app.store.models import Identity

PassphraseFn = Callable[[], str]
KEY_FILE_NAME = "identity.key"
STORAGE_KEYRING = "keyring"
STORAGE_FILE = "encrypted-file"


class PassphraseRequired(IdentityError):
    """A passphrase is needed (no secure keyring, or the key is in an encrypted file)."""

    def __init__(self, message: str, *, hint: str | None = None, reason: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason or message


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    public_key: str
    fingerprint: str
    grouped: str
    storage: str
    backend: str
    backend_secure: bool
    key_file: str | None
    rotated_from: str | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            "publicKey": d["public_key"],
            "fingerprint": d["fingerprint"],
            "grouped": d["grouped"],
            "storage": d["storage"],
            "backend": d["backend"],
            "backendSecure": d["backend_secure"],
            "keyFile": d["key_file"],
            "rotatedFrom": d["rotated_from"],
        }


def format_fingerprint(fpr: str) -> str:
    """The fingerprint as people see it everywhere (16 groups of 4 hex digits)."""
    return grouped(fpr)


def _resolve(passphrase: str | PassphraseFn | None) -> str | None:
    return passphrase() if callable(passphrase) else passphrase


class IdentityService:
    def __init__(self, ctx: ServiceContext, keystore: KeyStore | None = None) -> None:
        self._ctx = ctx
        self._keystore = keystore or KeyStore()

    @property
    def key_file_path(self) -> Path:
        return self._ctx.data_dir / KEY_FILE_NAME

    # -- reading ---------------------------------------------------------------------------

    def _active_row(self, s: Session) -> Identity | None:
        return s.scalars(
            select(Identity).where(Identity.active.is_(True)).order_by(Identity.id.desc())
        ).first()

    def _info(self, row: Identity, note: str = "") -> IdentityInfo:
        status = self._keystore.status()
        return IdentityInfo(
            public_key=row.public_key,
            fingerprint=row.fingerprint,
            grouped=grouped(row.fingerprint),
            storage=row.storage,
            backend=status.name,
            backend_secure=status.secure,
            key_file=row.key_file,
            rotated_from=row.rotated_from,
            note=note,
        )

    def new_key_needs_passphrase(self, *, use_key_file: bool = False) -> bool:
        """Whether a new key (rotation) will go to an encrypted file, so a passphrase is due."""
        if use_key_file or not self._keystore.status().secure:
            return True
        current = self.current()
        return current is not None and current.storage == STORAGE_FILE

    def key_in_file(self) -> bool:
        """Whether the active key is in an encrypted key file (so using it needs the
        passphrase); cheap: reads the catalogue only, never probes the keyring."""
        with self._ctx.db.session() as s:
            row = self._active_row(s)
            return row is not None and row.storage == STORAGE_FILE

    def current(self) -> IdentityInfo | None:
        with self._ctx.db.session() as s:
            row = self._active_row(s)
            return None if row is None else self._info(row)

    def show(self) -> dict[str, Any]:
        info = self.current()
        if info is None:
            raise IdentityError("you have no identity yet", hint="create one with `identity init`")
        return info.to_dict()

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every key this user has held (rotated ones too): old signatures stay checkable."""
        with self._ctx.db.session() as s:
            rows = s.scalars(select(Identity)).all()
            return {r.fingerprint: load_public_hex(r.public_key) for r in rows}

    # -- storing a private key -------------------------------------------------------------

    def _store_private(
        self, key: Ed25519PrivateKey, passphrase: str | None, use_key_file: bool
    ) -> tuple[str, str | None, str]:
        """Put the key in the keyring or an encrypted file: (storage, key_file, note)."""
        fpr = fingerprint(key)
        reason = ""
        if not use_key_file:
            try:
                self._keystore.store(fpr, private_raw(key))
                return (
                    STORAGE_KEYRING,
                    None,
                    f"private key stored in {self._keystore.backend_name()}",
                )
            except KeyringUnavailable as exc:
                reason = exc.message
        if passphrase is None:
            why = reason or "you asked for an encrypted key file"
            raise PassphraseRequired(
                f"a passphrase is needed: {why}",
                reason=why,
                hint="the private key will be kept in an encrypted key file "
                f"({self.key_file_path}); give a passphrase via --passphrase-file, "
                "CONTRIBUTOR_DESK_PASSPHRASE or the prompt",
            )
        keyfile.write_key_file(self.key_file_path, key, passphrase)
        note = (
            f"{reason}; " if reason else ""
        ) + f"private key stored encrypted in {self.key_file_path} (passphrase-protected)"
        return STORAGE_FILE, str(self.key_file_path), note

    def _retire_key_file(self, s: Session, row: Identity) -> None:
        """Keep a retiring key's file under its own name so the next key can use identity.key.

        Copy, not move: until identity.key is overwritten both files hold the old key, so a
        crash at any point leaves the row pointing at a readable file.
        """
        if row.storage != STORAGE_FILE or row.key_file != str(self.key_file_path):
            return
        target = self._ctx.data_dir / f"identity-{row.fingerprint[:16]}.key"
        if self.key_file_path.exists():
            write_private_file(target, self.key_file_path.read_bytes())
        row.key_file = str(target)

    def _activate(
        self,
        key: Ed25519PrivateKey,
        storage: str,
        key_file: str | None,
        *,
        rotated_from: str | None = None,
        rotation_statement: dict[str, Any] | None = None,
    ) -> Identity:
        fpr = fingerprint(key)
        with self._ctx.db.session() as s:
            for other in s.scalars(select(Identity).where(Identity.active.is_(True))):
                other.active = False
            row = s.scalars(select(Identity).where(Identity.fingerprint == fpr)).first()
            if row is None:
                row = Identity(public_key=public_hex(key), fingerprint=fpr)
                s.add(row)
            row.storage = storage
            row.key_file = key_file
            row.backend = self._keystore.backend_name() if storage == STORAGE_KEYRING else ""
            row.active = True
            if rotated_from is not None:
                row.rotated_from = rotated_from
                row.rotation_statement = rotation_statement
            s.flush()
            return row

    # -- use cases -------------------------------------------------------------------------

    def init(self, passphrase: str | None = None, *, use_key_file: bool = False) -> IdentityInfo:
        """Create the identity; needs a passphrase only when the key must go to a file."""
        existing = self.current()
        if existing is not None:
            raise IdentityError(
                f"you already have an identity ({existing.grouped})",
                hint="use `identity rotate` to replace it, or `identity import` to restore one",
            )
        if passphrase is not None:
            keyfile.check_new_passphrase(passphrase)
        key = generate_private_key()
        storage, key_file, note = self._store_private(key, passphrase, use_key_file)
        row = self._activate(key, storage, key_file)
        return self._info(row, note)

    def load_signer(self, passphrase: str | PassphraseFn | None = None) -> Ed25519PrivateKey:
        """The active private key, from the keyring or the encrypted file (asks if needed)."""
        with self._ctx.db.session() as s:
            row = self._active_row(s)
            if row is None:
                raise IdentityError(
                    "you have no identity yet", hint="create one with `identity init`"
                )
            fpr, storage, key_file = row.fingerprint, row.storage, row.key_file
        if storage == STORAGE_FILE:
            path = Path(key_file or self.key_file_path)
            secret = _resolve(passphrase)
            if secret is None:
                raise PassphraseRequired(
                    f"the private key is in the encrypted key file {path}; "
                    "its passphrase is needed",
                    hint="give it via --passphrase-file, CONTRIBUTOR_DESK_PASSPHRASE or the prompt",
                )
            key = keyfile.read_key_file(path, secret)
        else:
            raw = self._keystore.load(fpr)
            if raw is None:
                raise IdentityError(
                    f"the private key of {grouped(fpr)} is not in the keyring "
                    f"({self._keystore.backend_name()})",
                    hint="restore it from your backup with `identity import FILE`",
                )
            key = load_private_raw(raw)
        if fingerprint(key) != fpr:
            raise IdentityError(
                f"the stored private key does not belong to identity {grouped(fpr)}",
                hint="restore it from your backup with `identity import FILE`",
            )
        return key

    def export(
        self, path: Path, passphrase: str, *, unlock: str | PassphraseFn | None = None
    ) -> IdentityInfo:
        """Back up the active key, always as an encrypted key file (mode 0600)."""
        keyfile.check_new_passphrase(passphrase)
        key = self.load_signer(unlock)
        keyfile.write_key_file(path, key, passphrase)
        info = self.current()
        assert info is not None
        return IdentityInfo(**{**asdict(info), "note": f"encrypted backup written to {path}"})

    def import_(self, path: Path, passphrase: str, *, use_key_file: bool = False) -> IdentityInfo:
        """Restore a backup: checks passphrase and key integrity, then makes it active."""
        key = keyfile.read_key_file(path, passphrase)
        with self._ctx.db.session() as s:
            active = self._active_row(s)
            if active is not None and active.fingerprint != fingerprint(key):
                self._retire_key_file(s, active)
        storage, key_file, note = self._store_private(key, passphrase, use_key_file)
        row = self._activate(key, storage, key_file)
        return self._info(row, note)

    def rotate(
        self,
        passphrase: str | None = None,
        *,
        unlock: str | PassphraseFn | None = None,
        use_key_file: bool = False,
    ) -> tuple[IdentityInfo, dict[str, Any]]:
        """Introduce a new key signed by the old one; returns it and the rotation envelope."""
        old = self.load_signer(unlock)
        new = generate_private_key()
        with self._ctx.db.session() as s:
            active = self._active_row(s)
            assert active is not None
            self._retire_key_file(s, active)
        storage, key_file, note = self._store_private(new, passphrase, use_key_file)
        envelope = build_rotation(old, new).to_dict()
        row = self._activate(
            new, storage, key_file, rotated_from=fingerprint(old), rotation_statement=envelope
        )
        return self._info(row, note), envelope
