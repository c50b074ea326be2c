"""Crash safety of small-blob batches, whose job rows are claimed and finished in bulk.

1. kill -9 of the uploading CLI while one batch is in flight (its request held by a stalling
   proxy) and another is finished: the restart sends the claimed jobs again and ends accepted.
2. A crash after the registry stored a batch but before the client recorded it: the restart
   sends the batch again, the registry answers 'present', and nothing is duplicated.
In both, the queue ends with exactly one job per blob, all done.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.services.uploads import batch_sql
from app.store.queue_models import UploadJob
from tests.integration.faults.helpers import (
    Desk,
    assert_blobs_equal,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    make_desk,
    proxy_fixture,  # noqa: F401 - fixture 'proxy'
    registry_fixture,  # noqa: F401 - fixture 'registry'
    sha256,
)
from tests.integration.faults.proxy import Fault, FaultProxy
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# More than one batch (BATCH_COUNT jobs each), plus two files sharing one blob.
FILES = {f"d{i // 500}/f{i:04d}.txt": f"small file {i}\n".encode() for i in range(2300)}
FILES["copy/f0000.txt"] = FILES["d0/f0000.txt"]


def _states(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "catalogue.sqlite3", timeout=10) as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM upload_jobs WHERE kind = 'blob' GROUP BY state"
        ).fetchall()
    return {str(state): int(n) for state, n in rows}


def _upload_cli(data_dir: Path, url: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["CONTRIBUTOR_DESK_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--registry", url, "upload", "--wait", "--concurrency", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _assert_one_done_job_per_blob(desk: Desk, item: int) -> None:
    with desk.ctx.db.session() as s:
        rows = s.execute(
            select(UploadJob.sha256, func.count(), func.min(UploadJob.state))
            .where(UploadJob.item_id == item, UploadJob.kind == "blob")
            .group_by(UploadJob.sha256)
        ).all()
    assert len(rows) == len({sha256(v) for v in FILES.values()})
    assert all(n == 1 and state == "done" for _, n, state in rows)


def test_kill_9_with_a_batch_in_flight_then_restart_completes(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    proxy: FaultProxy,
) -> None:
    desk = make_desk(tmp_path, data_dir, proxy.url)
    item = desk.add("many", FILES)
    assert desk.submit(item).blobs_to_upload == len(FILES) - 1
    desk.ctx.close()
    stall = proxy.add(Fault("stall", 1, "POST", "/v1/uploads/batch", seconds=60))
    first = _upload_cli(data_dir, proxy.url)
    deadline = time.monotonic() + 60
    while True:  # one batch held by the proxy (claimed: uploading), the other one done
        assert first.poll() is None, first.communicate()
        states = _states(data_dir)
        if stall.applied and states.get("uploading") and states.get("done"):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    proxy.clear()
    again = _upload_cli(data_dir, proxy.url)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert desk.state(item) == "accepted"
    _assert_one_done_job_per_blob(desk, item)
    assert_blobs_equal(registry, FILES)
    desk.ctx.close()


class _CrashAfterSend(BaseException):
    """Stands for the process dying between the registry's answer and our commit."""


def test_crash_after_the_registry_stored_a_batch_resends_it_without_duplicates(
    desk: Desk, registry: RegistryProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = desk.add("many", FILES)
    desk.submit(item)
    target = "app.services.uploads.workers.mark_done"  # the name the worker calls

    def crash(*args: object) -> None:
        raise _CrashAfterSend

    monkeypatch.setattr(target, crash)
    queue = desk.queue(concurrency=1)
    with pytest.raises(_CrashAfterSend):
        queue.run()
    queue.close()
    assert _states(desk.ctx.data_dir).get("done", 0) == 0  # nothing was recorded
    monkeypatch.setattr(target, batch_sql.mark_done)
    queue = desk.queue(concurrency=2)
    snap = queue.run()  # jobs left 'uploading' are pending again; the registry has them
    queue.close()
    assert desk.state(item) == "accepted"
    (c,) = snap.contributions
    assert c.jobs_done == c.jobs_total == len(FILES) - 1
    _assert_one_done_job_per_blob(desk, item)
    assert_blobs_equal(registry, FILES)
