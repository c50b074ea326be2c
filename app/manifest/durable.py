"""Durability helper shared by the BagIt export and the registry's blob store."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX; Windows cannot open a folder, NTFS journals it)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
