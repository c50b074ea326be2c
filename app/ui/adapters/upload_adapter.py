"""Connects the Uploads page to the UploadQueue and SubmitService services.

Why an adapter: the page codes against the small UploadQueue protocol in uploads_view; this
class maps the service's snapshots onto it and owns the queue's long-running thread (a plain
thread, not a QThreadPool slot). Everything here is called from workers or that thread; the
GUI only sees results delivered by the task helper.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.domain.states import JobKind, JobState, State
from app.services.context import ServiceContext
from app.services.uploads import ContributionSnapshot, QueueEvent, RegistryStatus
from app.services.uploads.remote import SubmitResult
from app.ui.adapters.upload_states import OFFLINE

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FileProgress:
    label: str
    state: str
    bytes_done: int
    bytes_total: int
    last_error: str


@dataclass(frozen=True)
class ContributionProgress:
    item_id: int
    title: str
    state: str
    bytes_done: int
    bytes_total: int
    rate_bps: float
    eta_s: float | None
    last_error: str
    files: tuple[FileProgress, ...] = field(default_factory=tuple)


ACTIVE = (State.QUEUED, State.UPLOADING)


def _shown_state(c: ContributionSnapshot, offline: bool) -> str:
    """What a contribution is doing, as the user can act on it.

    'paused' when every unfinished job is paused; 'failed' when the only unfinished work is
    failed jobs; 'offline' when it would upload but the registry cannot be reached;
    'queued' for an 'uploading' contribution that moves no bytes yet; else its state."""
    state = str(c.state)
    if state not in ACTIVE:
        return state
    unfinished = c.jobs_total - c.jobs_done - c.jobs_failed
    if c.jobs_paused and c.jobs_paused >= unfinished:
        return JobState.PAUSED
    if c.jobs_failed and unfinished <= c.jobs_paused:
        return JobState.FAILED
    if offline:
        return OFFLINE
    if state == State.UPLOADING and not c.rate_bps:
        return State.QUEUED
    return state


class GuiUploadQueue:
    def __init__(self, ctx: ServiceContext) -> None:
        from app.services.submit import SubmitService
        from app.services.uploads import UploadQueue

        self._ctx = ctx
        self._queue = UploadQueue(ctx)
        self._submit = SubmitService(ctx)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_failure: BaseException | None = None
        self.offline = False  # as of the last jobs() snapshot

    # -- the queue thread ---------------------------------------------------------------
    def ensure_running(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.probe_now()
                return
            self._thread = threading.Thread(target=self._run, name="upload-queue", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._queue.run(until_idle=False)
        except BaseException as exc:  # kept for the page to show; the queue rows persist
            log.exception("upload queue stopped")
            self.last_failure = exc

    def waits_for_key(self) -> bool:
        """The queue thread stopped because the key (in its encrypted file) is locked."""
        from app.services.identity import PassphraseRequired

        return isinstance(self.last_failure, PassphraseRequired)

    def stop(self) -> None:
        self._queue.stop()
        thread = self._thread
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)

    def subscribe(self, callback: Callable[[QueueEvent], None]) -> Callable[[], None]:
        return self._queue.subscribe(callback)

    # -- UploadQueue protocol -----------------------------------------------------------
    def jobs(self) -> list[ContributionProgress]:
        snap = self._queue.snapshot()
        if snap.jobs and any(j.state in (JobState.PENDING, JobState.UPLOADING) for j in snap.jobs):
            self.ensure_running()
        files: dict[int, list[FileProgress]] = {}
        for job in snap.jobs:
            if job.kind != JobKind.BLOB:
                continue
            label = job.paths[0] if job.paths else f"blob {job.id}"
            if len(job.paths) > 1:
                label = f"{label} (+{len(job.paths) - 1} small files)"
            files.setdefault(job.item_id, []).append(
                FileProgress(label, job.state, job.bytes_sent, job.size, job.last_error)
            )
        offline = snap.registry_status == RegistryStatus.OFFLINE
        self.offline = offline
        return [
            ContributionProgress(
                item_id=c.item_id,
                title=c.title,
                state=_shown_state(c, offline),
                bytes_done=c.bytes_sent,
                bytes_total=c.total_bytes,
                rate_bps=c.rate_bps,
                eta_s=c.eta_s,
                last_error=c.last_error or "; ".join(c.rejection_reasons),
                files=tuple(files.get(c.item_id, [])),
            )
            for c in snap.contributions
        ]

    def registry_status(self) -> str:
        return str(self._queue.registry_status)

    def set_limits(
        self, *, bandwidth_bytes_per_s: int | None = None, concurrency: int | None = None
    ) -> None:
        """A new bandwidth limit or parallelism, applied to uploads already running."""
        self._queue.set_limits(bandwidth_bytes_per_s=bandwidth_bytes_per_s, concurrency=concurrency)

    def pause(self, item_id: int) -> None:
        self._queue.pause(item_id)

    def resume(self, item_id: int) -> None:
        self._queue.resume(item_id)
        self.ensure_running()

    def retry(self, item_id: int) -> None:
        self._queue.retry(item_id)
        self.ensure_running()

    def cancel(self, item_id: int) -> None:
        self._queue.cancel(item_id)

    def submit(
        self, item_id: int, passphrase: str | None = None, datanet: str | None = None
    ) -> SubmitResult:
        """Sign if needed and queue (no network needed), then let the queue upload."""
        result = self._submit.submit(item_id, passphrase=passphrase, datanet=datanet)
        self.ensure_running()
        return result
