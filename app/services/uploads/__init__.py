"""Uploading contributions: the persistent queue (queue.py) and the registry calls it and
`submit` make (remote.py). What callers use is re-exported here."""

from app.services.uploads.options import DiskFullError, QueueOptions
from app.services.uploads.progress import (
    ContributionSnapshot,
    JobSnapshot,
    QueueEvent,
    QueueSnapshot,
    RegistryStatus,
)
from app.services.uploads.queue import UploadQueue

__all__ = [
    "ContributionSnapshot",
    "DiskFullError",
    "JobSnapshot",
    "QueueEvent",
    "QueueOptions",
    "QueueSnapshot",
    "RegistryStatus",
    "UploadQueue",
]
