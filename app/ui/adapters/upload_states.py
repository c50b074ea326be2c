"""The states the Uploads page shows for a contribution, shared by the page and its adapter.

A shown state is the contribution's lifecycle `State` (queued, uploading, submitted, ...), the
`JobState` all its unfinished jobs share (paused, failed), or `OFFLINE`. This module stays
light: the page imports it at start-up, before the upload services (and SQLAlchemy) load.
"""

from __future__ import annotations

OFFLINE = "offline"  # it would upload, but the registry cannot be reached
