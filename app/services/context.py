"""What every use case needs: the data dir, settings and the catalogue database.

Built once by the CLI or GUI and passed to services through their constructors — no globals.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Hashable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from app.registry_client.tokens import TokenCache
from app.settings import REGISTRY_URL, Settings, default_data_dir

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from app.store.db import Database


class SignerCache:
    """The private key this session has unlocked, so one `submit` + upload decrypts the key
    file (scrypt, ~0.3 s, maybe a prompt) once instead of once per step.

    An entry is bound to the identity it was loaded for (`ident`: fingerprint, storage, key
    file and its size/mtime), so a rotated, imported or re-encrypted key is loaded afresh.
    A passphrase given as text must be the one that unlocked the key: only a keyed hash of it
    (random per-session salt) is kept, never the passphrase itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._salt = os.urandom(16)
        self._entry: tuple[Hashable, bytes | None, Ed25519PrivateKey] | None = None

    def tag(self, passphrase: str) -> bytes:
        return hmac.new(self._salt, passphrase.encode("utf-8"), hashlib.sha256).digest()

    def get(self, ident: Hashable, passphrase: str | None) -> Ed25519PrivateKey | None:
        """The cached key for `ident`; with a text passphrase, only if it is the right one."""
        with self._lock:
            entry = self._entry
        if entry is None or entry[0] != ident:
            return None
        if passphrase is not None and entry[1] is not None:
            if not hmac.compare_digest(entry[1], self.tag(passphrase)):
                return None
        return entry[2]

    def put(self, ident: Hashable, passphrase: str | None, key: Ed25519PrivateKey) -> None:
        tag = None if passphrase is None else self.tag(passphrase)
        with self._lock:
            self._entry = (ident, tag, key)

    def clear(self) -> None:
        with self._lock:
            self._entry = None


class ServiceContext:
    def __init__(self, data_dir: Path | None = None, registry_url: str | None = None) -> None:
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.data_dir.chmod(0o700)
        except OSError:
            pass
        self._registry_override = registry_url
        self.signers = SignerCache()
        self.tokens = TokenCache()  # registry session tokens, shared by this context's clients

    @cached_property
    def settings(self) -> Settings:
        return Settings(self.data_dir)

    @cached_property
    def db(self) -> Database:
        from app.store.db import Database  # SQLAlchemy is imported when first needed

        return Database(self.data_dir)

    @property
    def registry_url(self) -> str:
        return (self._registry_override or self.settings.get(REGISTRY_URL)).rstrip("/")

    @property
    def log_dir(self) -> Path:
        path = self.data_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        self.signers.clear()
        self.tokens.clear()
        if "db" in self.__dict__:
            self.db.dispose()
