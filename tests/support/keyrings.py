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
from keyring.errors import KeyringLocked, PasswordDeleteError

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
