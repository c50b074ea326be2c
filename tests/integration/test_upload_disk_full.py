"""Disk full on the client while the queue writes its state: a clear error, no corruption.

The data dir lives on a tiny tmpfs (mounted by the test, as root) that is then filled to the
last page. Where mounting is not permitted, SQLite's max_page_count makes the database
"full" instead (same SQLITE_FULL error path), and the test says so in its output.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from app.services.context import ServiceContext
from app.services.submit import SubmitService
from app.services.uploads import DiskFullError, UploadQueue
from tests.integration.faults.helpers import (
    fast_options,
    make_desk,
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

# Long names and distinct contents: creating the contribution inserts many job rows.
FILES = {f"{'long-name-' * 12}{i:04d}.txt": f"row {i}\n".encode() * 20 for i in range(150)}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 24 MiB tmpfs, or None when this process may not mount."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    block = b"\0" * (1024 * 1024)
    with open(filler, "wb", buffering=0) as fh:
        for size in (len(block), 64 * 1024, 4096, 512, 1):
            try:
                while True:
                    fh.write(block[:size])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_disk_full_while_writing_queue_state_is_a_clear_error_and_nothing_is_lost(
    tmp_path: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    small_disk: Path | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = (small_disk or tmp_path) / "data"
    desk = make_desk(tmp_path, data, registry.base_url)
    item = desk.add("ds", FILES)
    SubmitService(desk.ctx).prepare(item)  # signed and queued locally
    desk.ctx.close()  # last connection closed: SQLite checkpoints and removes the WAL

    ctx = ServiceContext(data, registry.base_url)
    if small_disk is not None:
        queue = UploadQueue(ctx, options=fast_options())
        queue.snapshot()  # open the database (WAL and shm files exist) before the disk fills
        filler = _fill(small_disk)
    else:
        with capsys.disabled():
            print("\nmount not permitted: simulating disk full with PRAGMA max_page_count")
        ctx.db.engine.dispose()
        pages = sqlite3.connect(ctx.db.path).execute("PRAGMA page_count").fetchone()[0]

        def cap(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

        event.listen(ctx.db.engine, "connect", cap)
        queue = UploadQueue(ctx, options=fast_options())
    with pytest.raises(DiskFullError) as err:
        queue.run()
    assert "disk holding your data folder is full" in err.value.message
    queue.close()
    ctx.close()

    if small_disk is not None:
        filler.unlink()
    check = sqlite3.connect(data / "catalogue.sqlite3")
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    state = check.execute("SELECT state FROM items WHERE id = ?", (item,)).fetchone()[0]
    check.close()
    assert state in ("queued", "uploading")

    ctx = ServiceContext(data, registry.base_url)  # space is back: it simply goes on
    queue = UploadQueue(ctx, options=fast_options(concurrency=4))
    queue.run()
    queue.close()
    ctx.close()
    assert desk.state(item) == "accepted"
    desk.ctx.close()
