"""Pausing the cyclic garbage collector around bulk work (registry and desktop app)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is built and written.

    Bulk work allocates tens of thousands of containers (row tuples, small lists and dicts,
    none in a reference cycle): the collections their allocation triggers, full ones over the
    whole heap included, cost a third of usage ingestion's Python time at the registry and
    half of an upload-queue snapshot of 10,000 jobs. Reference counting still frees
    everything as usual. Keep the paused stretch bounded (one batch, one request): cyclic
    garbage made meanwhile waits for the next collection. The collector is only switched
    back on if it was on (so nested or concurrent batches cannot turn on a collector
    someone else switched off; at worst one runs earlier than it would have).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
