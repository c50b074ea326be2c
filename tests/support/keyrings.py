"""Keyring backends for tests: never the developer's real keyring.

FileTestKeyring persists to a folder given by CONTRIBUTOR_DESK_TEST_KEYRING_DIR so that CLI
subprocesses started by a test share the test's isolated keyring
(PYTHON_KEYRING_BACKEND=tests.support.keyrings.FileTestKeyring). It stores secrets in clear in a
temp folder: acceptable only because it is test-only and the folder is the test's tmp_path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, KeyringLocked, PasswordDeleteError

ENV_DIR = "CONTRIBUTOR_DESK_TEST_KEYRING_DIR"


class FileTestKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def _file(self) -> Path:
        folder = os.environ.get(ENV_DIR)
        if not folder:
            raise RuntimeError(f"{ENV_DIR} is not set")
        return Path(folder) / "keyring.json"

    def _load(self) -> dict[str, str]:
        f = self._file()
        if (f.parent / "LOCKED").exists():
            raise KeyringLocked("test keyring is locked")
        return json.loads(f.read_text()) if f.exists() else {}

    def _save(self, data: dict[str, str]) -> None:
        self._file().parent.mkdir(parents=True, exist_ok=True)
        self._file().write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\0{username}", None) is None:
            raise PasswordDeleteError("not found")
        self._save(data)


class PlaintextKeyring(KeyringBackend):
    """Stands in for keyrings.alt.file.PlaintextKeyring (which may not be installed)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.data.pop((service, username))


PlaintextKeyring.__module__ = "keyrings.alt.file"


class BrokenKeyring(PlaintextKeyring):
    """A backend that looks fine but fails when used (D-Bus gone, daemon crashed...)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError("backend went away")

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringError("backend went away")


BrokenKeyring.__module__ = "tests.support.keyrings"


def key_encodings(raw: bytes) -> dict[str, bytes]:
    """Every form in which a leaked raw private key could show up in a file."""
    import base64

    return {
        "raw": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
    }


def find_key_leaks(raw: bytes, roots: list[Path], exclude: list[Path]) -> list[str]:
    """Files under `roots` (not under `exclude`) containing the private key in any encoding."""
    needles = key_encodings(raw)
    leaks: list[str] = []
    excluded = [e.resolve() for e in exclude]
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            resolved = path.resolve()
            if not path.is_file() or any(resolved.is_relative_to(e) for e in excluded):
                continue
            data = path.read_bytes()
            leaks.extend(f"{path} ({name})" for name, n in needles.items() if n in data)
    return leaks
