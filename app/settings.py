"""One typed registry of options with defaults, persisted as JSON in the data dir.

Paths come from platformdirs; `--data-dir` / CONTRIBUTOR_DESK_DATA_DIR override them
(portable mode, tests).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import platformdirs

from app import APP_ID
from app.domain import boundedjson
from app.domain.limits import MAX_SETTINGS_BYTES, read_limited
from app.durable import atomic_write

T = TypeVar("T")

ENV_DATA_DIR = "CONTRIBUTOR_DESK_DATA_DIR"
ENV_REGISTRY = "CONTRIBUTOR_DESK_REGISTRY"
DEFAULT_REGISTRY = "http://127.0.0.1:8765"


@dataclass(frozen=True)
class Option(Generic[T]):
    key: str
    type: type[T]
    default: T
    doc: str
    # For numbers: the range a stored value must be in (else the default is used).
    minimum: int | None = None
    maximum: int | None = None


REGISTRY_URL = Option("registry.url", str, DEFAULT_REGISTRY, "Base URL of the registry.")
DATANET = Option("registry.datanet", str, "", "Datanet id contributions are submitted to.")
UPLOAD_CONCURRENCY = Option(
    "upload.concurrency", int, 2, "Blobs uploaded at the same time.", minimum=1, maximum=64
)
UPLOAD_BANDWIDTH_KBPS = Option(
    "upload.bandwidthKBps",
    int,
    0,
    "Upload bandwidth limit in KB/s; 0 = unlimited.",
    minimum=0,
    maximum=10**9,
)
UPLOAD_CHUNK_MB = Option(
    "upload.chunkMB", int, 16, "tus PATCH chunk size in MiB.", minimum=1, maximum=1024
)
THEME = Option("ui.theme", str, "system", "system | light | dark")
CLOSE_TO_TRAY = Option("ui.closeToTray", bool, False, "Keep uploading when the window closes.")
FOLLOW_SYMLINKS = Option("import.followSymlinks", bool, False, "Follow symlinks when importing.")
SYNC_MINUTES = Option(
    "rewards.syncMinutes",
    int,
    15,
    "Minutes between automatic syncs of usage and rewards (also at start and on F5); "
    "0 = only at start and on F5.",
    minimum=0,
    maximum=24 * 60,
)

OPTIONS: dict[str, Option[Any]] = {
    o.key: o
    for o in (
        REGISTRY_URL,
        DATANET,
        UPLOAD_CONCURRENCY,
        UPLOAD_BANDWIDTH_KBPS,
        UPLOAD_CHUNK_MB,
        THEME,
        CLOSE_TO_TRAY,
        FOLLOW_SYMLINKS,
        SYNC_MINUTES,
    )
}


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_ID, appauthor=False))


def write_private_file(path: Path, data: bytes) -> None:
    """Write atomically (app.durable.atomic_write) with mode 0600."""
    atomic_write(path, data, mode=0o600)


class Settings:
    """Typed access to options; unknown or mistyped values fall back to defaults."""

    FILE_NAME = "settings.json"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / self.FILE_NAME
        self._values: dict[str, Any] = {}
        if self.path.exists():
            try:  # a damaged, huge or deeply nested file: the defaults (TooLarge is a ValueError)
                loaded = boundedjson.loads(read_limited(self.path, MAX_SETTINGS_BYTES))
                if isinstance(loaded, dict):
                    self._values = loaded
            except (OSError, ValueError):
                self._values = {}

    def get(self, option: Option[T]) -> T:
        if option is REGISTRY_URL and os.environ.get(ENV_REGISTRY):
            return cast(T, os.environ[ENV_REGISTRY])
        value = self._values.get(option.key, option.default)
        if option.type is int and isinstance(value, bool):
            return option.default
        if not isinstance(value, option.type):
            return option.default
        if isinstance(value, int) and not (
            (option.minimum is None or value >= option.minimum)
            and (option.maximum is None or value <= option.maximum)
        ):
            return option.default
        return value

    def set(self, option: Option[T], value: T) -> None:
        if not isinstance(value, option.type):
            raise TypeError(f"{option.key} must be {option.type.__name__}")
        self._values[option.key] = value

    def save(self) -> None:
        text = json.dumps(self._values, indent=2, sort_keys=True)
        write_private_file(self.path, text.encode("utf-8"))
