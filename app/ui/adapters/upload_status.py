"""The status bar's upload line, and the upload queue waiting for a locked key.

A queue whose key sits in an encrypted file stops when it needs the key and this session has
not unlocked it: the line then says so (and the status bar once, with what to do), and the
queue starts again as soon as any action unlocks the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from app.ui.adapters.services import Services
    from app.ui.adapters.tasks import TaskRunner

KEY_WAIT_HINT = "Uploads are waiting for your key: choose Registry ▸ Unlock key…"


class UploadStatus(QObject):
    line = Signal(str)  # the status bar's "Uploads: …" label
    message = Signal(str, int)  # a transient status-bar message and its timeout (ms)

    def __init__(
        self, services: Services, runner: TaskRunner, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.runner = runner
        self._told_key_wait = False  # the hint is said once per wait

    def waits_for_key(self) -> bool:
        """The queue (if this session started it) stopped because the key is locked."""
        uploads = self.services.started_uploads()
        return uploads is not None and uploads.waits_for_key()

    def summary(self, text: str) -> None:
        """The Uploads page's summary of the queue, e.g. "2 uploading, 1 paused"."""
        if self.waits_for_key():
            self.line.emit("Uploads: waiting for your key")
            if not self._told_key_wait:
                self._told_key_wait = True
                self.message.emit(KEY_WAIT_HINT, 20_000)
            return
        self.line.emit(f"Uploads: {text}")

    def key_unlocked(self) -> None:
        """The key is now held by this session: a queue that stopped for it starts again."""
        uploads = self.services.started_uploads()
        if uploads is not None and uploads.waits_for_key():
            uploads.last_failure = None
            self._told_key_wait = False
            self.runner.start(uploads.ensure_running)
