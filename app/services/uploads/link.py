"""Is the registry reachable? The queue's view of it, and the probe with backoff
(1 s → 60 s, jittered) while it is not."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from app.domain.errors import KnownError, RegistryRefused, RegistryUnavailable
from app.services.uploads.progress import Events, QueueEvent, RegistryStatus
from app.services.uploads.runtime import Runtime


class RegistryLink:
    def __init__(self, rt: Runtime, events: Events) -> None:
        self._rt = rt
        self._events = events
        self._lock = threading.Lock()
        self.status = RegistryStatus.UNKNOWN
        self.error = ""
        self._probe_delay = rt.options.probe_min_s
        self.next_probe: float | None = None  # monotonic time of the next probe

    @property
    def offline(self) -> bool:
        return self.status is RegistryStatus.OFFLINE

    def next_probe_at(self) -> datetime | None:
        """When the next probe is due, for the snapshot (only while offline)."""
        if self.next_probe is None or self.status is not RegistryStatus.OFFLINE:
            return None
        return datetime.now(UTC) + timedelta(seconds=max(0.0, self.next_probe - time.monotonic()))

    def probe_now(self) -> None:
        self.next_probe = time.monotonic()

    def went_online(self) -> None:
        if self.status is not RegistryStatus.ONLINE:
            self.status, self.error = RegistryStatus.ONLINE, ""
            self._probe_delay = self._rt.options.probe_min_s
            self.next_probe = None
            self._events.emit(QueueEvent("registry", message="online"))

    def went_offline(self, exc: BaseException) -> None:
        with self._lock:
            was = self.status
            self.status, self.error = RegistryStatus.OFFLINE, message(exc)
            if was is not RegistryStatus.OFFLINE:
                self._probe_delay = self._rt.options.probe_min_s
                self.next_probe = time.monotonic() + self._probe_delay
        if was is not RegistryStatus.OFFLINE:
            self._rt.stop_uploads()  # others would only fail too
            self._events.emit(QueueEvent("registry", message=f"offline: {exc}"))

    def probe(self) -> None:
        try:
            self._rt.client.health(retry=False)
        except (RegistryUnavailable, RegistryRefused) as exc:
            self._probe_delay = min(self._rt.options.probe_max_s, self._probe_delay * 2)
            jitter = self._rt.rng.uniform(0.8, 1.2)
            self.next_probe = time.monotonic() + self._probe_delay * jitter
            self.error = message(exc)
            self._events.emit(QueueEvent("registry", message=f"offline: {exc}"))
            return
        self.went_online()


def message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, KnownError) else str(exc)
