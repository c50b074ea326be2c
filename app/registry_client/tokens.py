"""Registry session tokens shared within one process (no network imports: the GUI's
ServiceContext holds one from startup)."""

from __future__ import annotations

import threading


class TokenCache:
    """Session tokens shared by the clients of one process (submit, then the upload queue),
    by registry URL and public key: one login instead of one per client. Memory only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], str] = {}

    def get(self, base_url: str, public_key: str) -> str | None:
        with self._lock:
            return self._tokens.get((base_url, public_key))

    def put(self, base_url: str, public_key: str, token: str) -> None:
        with self._lock:
            self._tokens[(base_url, public_key)] = token

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
