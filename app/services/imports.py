"""The packages the services load lazily on worker threads, imported one thread at a time.

Their modules import each other, and CPython's import locks are per module: two threads
entering one of these packages at different modules at the same moment (at the GUI's start:
the catalogue, the identity and the automatic sync, each on a worker) can deadlock or be handed
a half-initialised module ("partially initialized module 'sqlalchemy.util'"). Once imported
whole they are safe to use from any thread.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)
_lock = threading.Lock()
_ready = False


def ready_imports() -> None:
    """Import the shared packages whole, once; every caller waits until they are."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        try:
            import httpx  # noqa: F401
            import keyring.backends  # noqa: F401
            import msgspec.json  # noqa: F401
            import sqlalchemy.dialects.sqlite  # noqa: F401
            import sqlalchemy.orm  # noqa: F401
            from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
        except ImportError:  # the task that needs it reports it
            log.warning("a shared import failed", exc_info=True)
        _ready = True
