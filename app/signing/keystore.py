"""The private key in the OS keyring, and the judgement of whether that keyring is safe.

Conventions rule 6: a key must never land silently in a fail, null, plaintext or obfuscated
backend. `KeyStore.status()` says whether the backend can be trusted; `store()` refuses
otherwise (KeyringUnavailable), so the identity service can offer the encrypted key file.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import keyring
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, KeyringLocked, PasswordDeleteError

from app.domain.errors import IdentityError
from app.signing.identity import RAW_KEY_LEN

SERVICE_NAME = "contributor-desk"

# Backends that accept a secret but do not protect it (by module or class name, because
# keyrings.alt may not be installed and we must recognise it without importing it).
_INSECURE_MODULES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt.file")
_INSECURE_NAME_PARTS = ("plaintext", "obfuscat", "fail.keyring", "null.keyring")


class KeyringUnavailable(IdentityError):
    """The keyring cannot (or must not) hold the key: insecure backend, locked, or broken."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(
            message,
            hint="use an encrypted key file protected by a passphrase instead",
        )
        self.locked = locked


@dataclass(frozen=True, slots=True)
class BackendStatus:
    name: str
    secure: bool
    reason: str  # empty when secure; otherwise why the backend is refused


def describe_backend(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _insecure_reason(backend: KeyringBackend) -> str:
    """Why this single (non-chainer) backend must not hold a private key, or ''."""
    name = describe_backend(backend)
    lowered = name.lower()
    if any(name.startswith(m) for m in _INSECURE_MODULES) or any(
        part in lowered for part in _INSECURE_NAME_PARTS
    ):
        return f"keyring backend {name} does not protect secrets"
    return ""


def _chained(backend: KeyringBackend) -> list[KeyringBackend] | None:
    """Members of a ChainerBackend, or None when the backend is not a chainer."""
    if type(backend).__name__ != "ChainerBackend":
        return None
    return list(getattr(backend, "backends", []))


class KeyStore:
    """Private keys in the keyring: service SERVICE_NAME, username = fingerprint."""

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        self._backend = backend if backend is not None else keyring.get_keyring()

    def backend_name(self) -> str:
        members = _chained(self._backend)
        if members is None:
            return describe_backend(self._backend)
        inner = ", ".join(describe_backend(b) for b in members) or "no backends"
        return f"{describe_backend(self._backend)} ({inner})"

    def status(self) -> BackendStatus:
        name = self.backend_name()
        members = _chained(self._backend)
        if members is not None:
            if not members:
                return BackendStatus(name, False, "no usable keyring backend is installed")
            for member in members:
                reason = _insecure_reason(member)
                if reason:
                    return BackendStatus(name, False, reason)
            return BackendStatus(name, True, "")
        reason = _insecure_reason(self._backend)
        return BackendStatus(name, not reason, reason)

    def store(self, fpr: str, raw_private: bytes) -> None:
        status = self.status()
        if not status.secure:
            raise KeyringUnavailable(f"no secure keyring: {status.reason}")
        secret = base64.b64encode(raw_private).decode("ascii")
        try:
            self._backend.set_password(SERVICE_NAME, fpr, secret)
        except KeyringLocked:
            raise KeyringUnavailable(
                f"the keyring ({status.name}) is locked", locked=True
            ) from None
        except Exception as exc:  # any backend/D-Bus failure: third-party plugin boundary
            raise KeyringUnavailable(
                f"the keyring ({status.name}) refused the key: {type(exc).__name__}"
            ) from None
        # Some backends (chainer) swallow failures; read back to be sure the key is there.
        if self.load(fpr) != raw_private:
            raise KeyringUnavailable(f"the keyring ({status.name}) did not keep the key")

    def load(self, fpr: str) -> bytes | None:
        """The raw private key, None if absent; IdentityError when the keyring is unusable."""
        try:
            secret = self._backend.get_password(SERVICE_NAME, fpr)
        except KeyringLocked:
            raise IdentityError(
                f"the keyring ({self.backend_name()}) is locked",
                hint="unlock your keyring (log in to your desktop session) and try again",
            ) from None
        except Exception as exc:  # third-party plugin boundary
            raise IdentityError(
                f"cannot read the keyring ({self.backend_name()}): {type(exc).__name__}"
            ) from None
        if secret is None:
            return None
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise IdentityError(
                "the private key stored in the keyring is damaged",
                hint="restore it from your backup with `identity import`",
            ) from None
        if len(raw) != RAW_KEY_LEN:
            raise IdentityError(
                "the private key stored in the keyring has the wrong length",
                hint="restore it from your backup with `identity import`",
            )
        return raw

    def delete(self, fpr: str) -> bool:
        """Remove the key; False when it was not there."""
        try:
            self._backend.delete_password(SERVICE_NAME, fpr)
        except PasswordDeleteError:
            return False
        except KeyringError as exc:
            raise IdentityError(f"cannot delete the key from the keyring: {exc}") from None
        return True
