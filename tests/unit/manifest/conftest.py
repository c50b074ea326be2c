"""Fixtures for manifest tests: build a real manifest of a folder the way the app does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.manifest.canonical import Manifest, ManifestEntry
from app.manifest.hashing import hash_files
from app.manifest.scan import scan_paths


def _manifest_of(root: Path) -> Manifest:
    result = hash_files(scan_paths([root]).files)
    assert result.problems == []
    return Manifest.from_entries(
        ManifestEntry(e.scanned.rel_path, e.scanned.size, e.sha256) for e in result.entries
    )


@pytest.fixture
def manifest_of() -> Callable[[Path], Manifest]:
    return _manifest_of
