"""The packages the services load lazily on worker threads, imported one thread at a time.

Their modules import each other, and CPython's import locks are per module: two threads
entering one of these packages at different modules at the same moment (at the GUI's start:
the catalogue, the identity and the automatic sync, each on a worker) can deadlock or be handed
a half-initialised module ("partially initialized module 'sqlalchemy.util'"). Once imported
whole they are safe to use from any thread.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)
# Third-party packages only (this module is about their import cycles, not ours).
SHARED = (
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "keyring.backends",
    "requests",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "httpx",  # with the registry's extra (the embedded demo registry)
    "msgspec.json",
)
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
        for name in SHARED:
            try:
                importlib.import_module(name)
            except ImportError:  # not installed here (the registry's extra): nothing to guard
                log.debug("%s is not importable", name)
        _ready = True
