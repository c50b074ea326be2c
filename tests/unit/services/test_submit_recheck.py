"""The submit re-check: size+mtime fast path, sha256 only when the fast path says 'maybe'."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from app.services.recheck import CatalogFile, check_files


def _entry(root: Path, fid: int, rel: str) -> CatalogFile:
    p = root / rel
    st = p.stat()
    return CatalogFile(
        fid, rel, st.st_size, hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns
    )


def test_check_files_tells_touched_from_changed_and_missing(tmp_path: Path) -> None:
    for name in ("same", "touched", "edited", "gone", "grown"):
        (tmp_path / name).write_bytes(b"12345")
    files = [
        _entry(tmp_path, i, n) for i, n in enumerate(["same", "touched", "edited", "gone", "grown"])
    ]
    later = files[0].mtime_ns + 5_000_000_000
    os.utime(tmp_path / "touched", ns=(later, later))  # same bytes, new mtime
    (tmp_path / "edited").write_bytes(b"54321")  # same size, new bytes
    os.utime(tmp_path / "edited", ns=(later, later))
    (tmp_path / "gone").unlink()
    (tmp_path / "grown").write_bytes(b"123456")
    changed, touched = check_files(str(tmp_path), files)
    assert changed == ["edited (content changed)", "gone (missing)", "grown (size 5 → 6)"]
    assert touched == {1: later}  # kept so the next re-check takes the fast path
