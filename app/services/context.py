"""What every use case needs: the data dir, settings and the catalogue database.

Built once by the CLI or GUI and passed to services through their constructors — no globals.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import REGISTRY_URL, Settings, default_data_dir

if TYPE_CHECKING:
    from app.store.db import Database


class ServiceContext:
    def __init__(self, data_dir: Path | None = None, registry_url: str | None = None) -> None:
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.data_dir.chmod(0o700)
        except OSError:
            pass
        self._registry_override = registry_url

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
        if "db" in self.__dict__:
            self.db.dispose()
