"""Submit + upload queue against the real registry on loopback (no mocks)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from app.domain.errors import BadInputError, UsageError
from app.services.catalogue import CatalogueService
from app.services.uploads import QueueEvent, RegistryStatus
from app.store.queue_models import UploadJob
from tests.integration.faults.helpers import (
    Desk,
    assert_blobs_equal,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    random_bytes,
    registry_fixture,  # noqa: F401 - fixture 'registry'
    sha256,
)
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow  # each test starts its own registry process

FILES = {
    "big.bin": random_bytes(900_000, 1),
    "small.txt": b"hello world\n" * 10,
    "copy/small.txt": b"hello world\n" * 10,  # identical blob: uploaded once
    "empty.dat": b"",
}


def test_submit_then_upload_ends_accepted_with_identical_blobs(
    desk: Desk, registry: RegistryProcess
) -> None:
    item = desk.add("ds", FILES)
    result = desk.submit(item)
    assert not result.offline and result.registry_id
    assert result.blobs_to_upload == 3  # big, small (deduped), empty
    events: list[QueueEvent] = []
    queue = desk.queue()
    queue.subscribe(events.append)
    snap = queue.run()
    queue.close()
    assert desk.state(item) == "accepted"
    assert_blobs_equal(registry, FILES)
    assert snap.registry_status is RegistryStatus.ONLINE
    (c,) = snap.contributions
    assert (c.jobs_done, c.jobs_total, c.bytes_confirmed) == (3, 3, c.total_bytes)
    assert c.total_bytes == len(FILES["big.bin"]) + len(FILES["small.txt"])
    kinds = {e.kind for e in events}
    assert {"progress", "job", "contribution"} <= kinds
    history = [h.event for h in CatalogueService(desk.ctx).history(item)]
    assert history[:5] == ["accepted", "submitted", "uploading", "created", "queued"]


def test_resubmitting_the_same_data_uploads_zero_bytes(desk: Desk) -> None:
    first = desk.add("a", FILES)
    desk.submit(first)
    desk.queue().run()
    same = {**FILES, "extra-note.txt": b"new"}
    second = desk.add("b", same)
    result = desk.submit(second)
    assert result.blobs_to_upload == 1 and result.bytes_to_upload == 3
    snap = desk.queue().run()
    assert desk.state(second) == "accepted"
    assert sum(c.total_bytes for c in snap.contributions if c.item_id == second) == 3


def test_submit_refuses_changed_files_with_a_clear_list(desk: Desk) -> None:
    item = desk.add("ds", FILES)
    desk.file("ds", "small.txt").write_bytes(b"changed!")
    desk.file("ds", "big.bin").unlink()
    with pytest.raises(BadInputError) as err:
        desk.submit(item)
    assert "big.bin (missing)" in err.value.message
    assert "small.txt (size 120 → 8)" in err.value.message
    assert desk.state(item) == "draft"


def test_submit_twice_is_refused(desk: Desk) -> None:
    item = desk.add("ds", {"a.txt": b"a"})
    desk.submit(item)
    with pytest.raises(UsageError, match="already queued"):
        desk.submit(item)


def test_offline_submit_is_signed_and_queued_then_goes_out(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    from tests.integration.faults.helpers import make_desk, start_registry

    reg = start_registry(tmp_path)
    port = reg.port
    url = reg.base_url
    reg.kill()  # the registry is down while the user submits
    d = make_desk(tmp_path, data_dir, url)
    item = d.add("ds", FILES)
    result = d.submit(item)
    assert result.offline and result.registry_id is None
    assert d.state(item) == "queued"
    snap = d.queue().run(wait_offline=False)
    assert snap.registry_status is RegistryStatus.OFFLINE and snap.active
    (job,) = snap.jobs
    assert job.kind == "create" and job.state == "pending"
    reg.start(port)  # back on the same port
    try:
        snap = d.queue().run()
        assert d.state(item) == "accepted"
        assert_blobs_equal(reg, FILES)
    finally:
        reg.kill()
        d.ctx.close()


def test_queue_waits_offline_probes_and_resumes_by_itself(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path
) -> None:
    from tests.integration.faults.helpers import make_desk, start_registry

    reg = start_registry(tmp_path)
    port = reg.port
    d = make_desk(tmp_path, data_dir, reg.base_url)
    item = d.add("ds", FILES)
    d.submit(item)
    reg.kill()
    queue = d.queue()
    statuses: list[str] = []
    queue.subscribe(lambda e: statuses.append(e.message) if e.kind == "registry" else None)
    result: list[object] = []
    runner = threading.Thread(target=lambda: result.append(queue.run()))
    runner.start()
    try:
        deadline = threading.Event()
        for _ in range(100):
            snap = queue.snapshot()
            if snap.registry_status is RegistryStatus.OFFLINE and snap.next_probe_at:
                break
            deadline.wait(0.05)
        assert queue.snapshot().registry_status is RegistryStatus.OFFLINE
        reg.start(port)
        runner.join(60)
        assert not runner.is_alive()
    finally:
        queue.stop()
        runner.join(10)
        reg.kill()
    assert d.state(item) == "accepted"
    assert any(s.startswith("offline") for s in statuses) and "online" in statuses
    d.ctx.close()


def test_file_modified_after_submit_stops_only_that_contribution(
    desk: Desk, registry: RegistryProcess
) -> None:
    good = desk.add("good", {"g.bin": random_bytes(300_000, 2)})
    bad = desk.add("bad", {"b1.bin": random_bytes(300_000, 3), "b2.bin": b"x" * 100})
    desk.submit(good)
    desk.submit(bad)
    desk.file("bad", "b1.bin").write_bytes(random_bytes(300_000, 4))  # same size, new bytes
    snap = desk.queue().run()
    assert desk.state(good) == "accepted"
    assert desk.state(bad) in ("queued", "uploading")
    (c,) = [c for c in snap.contributions if c.item_id == bad]
    assert c.jobs_failed == 1
    assert "b1.bin was modified after submit" in c.last_error
    assert not snap.active  # nothing left the queue would do by itself
    # restoring the file and retrying completes it
    desk.file("bad", "b1.bin").write_bytes(random_bytes(300_000, 3))
    queue = desk.queue()
    with desk.ctx.db.session() as s:  # restore mtime to the catalogued one
        from app.store.models import FileEntry

        entry = s.scalars(select(FileEntry).where(FileEntry.path == "b1.bin")).one()
        import os

        os.utime(desk.file("bad", "b1.bin"), ns=(entry.mtime_ns, entry.mtime_ns))
    assert queue.retry(bad) >= 1
    queue.run()
    assert desk.state(bad) == "accepted"


def test_pause_resume_and_cancel(desk: Desk) -> None:
    a = desk.add("a", {"a.bin": random_bytes(200_000, 5)})
    b = desk.add("b", {"b.bin": random_bytes(200_000, 6)})
    desk.submit(a)
    desk.submit(b)
    queue = desk.queue()
    assert queue.pause(a) == 1
    queue.cancel(b)
    snap = queue.run()
    assert desk.state(a) == "queued" and desk.state(b) == "draft"
    assert {j.state for j in snap.jobs if j.item_id == a} == {"paused"}
    assert queue.resume(a) == 1
    queue.run()
    assert desk.state(a) == "accepted"


def test_planned_batches_go_out_once_and_stop_at_pause(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small blobs are planned in batches that the workers take one after the other; a pause
    between two batches drops the plan (nothing more is sent), resume re-plans the rest."""
    from app.services.uploads import options

    monkeypatch.setattr(options, "BATCH_COUNT", 10)
    files = {f"d/f{i:03d}.txt": f"small {i}\n".encode() for i in range(95)}
    item = desk.add("many", files)
    desk.submit(item)
    queue = desk.queue(concurrency=2)
    sent: list[int] = []
    real = queue.client.upload_batch

    def counting(contribution: str, blobs: list[tuple[str, int, object]]) -> object:
        sent.append(len(blobs))
        if len(sent) == 3:
            queue.pause(item)
        return real(contribution, blobs)  # type: ignore[arg-type]

    monkeypatch.setattr(queue.client, "upload_batch", counting)
    queue.run()
    # The batch that paused and the other worker's batch in flight were already claimed;
    # no planned batch started after the pause.
    assert len(sent) <= 4 and all(n <= 10 for n in sent)
    with desk.ctx.db.session() as s:
        states = [r.state for r in s.scalars(select(UploadJob).where(UploadJob.kind == "blob"))]
    assert states.count("done") == sum(sent) and states.count("paused") == 95 - sum(sent)
    assert queue.resume(item) == 95 - sum(sent)
    queue.run()
    assert desk.state(item) == "accepted"
    assert sum(sent) == 95  # each blob went out exactly once, over both runs


def test_submit_and_upload_log_in_once_and_a_stale_shared_token_is_replaced(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.registry_client.http import RegistryHttp
    from app.services.signing import unlock_signer
    from app.signing.identity import public_hex

    logins: list[str] = []
    real = RegistryHttp._login

    def counting(self: RegistryHttp) -> str:
        token = real(self)
        logins.append(token)
        return token

    monkeypatch.setattr(RegistryHttp, "_login", counting)
    a = desk.add("a", {"a.txt": b"first\n"})
    desk.submit(a)
    desk.queue().run()
    assert desk.state(a) == "accepted"
    assert len(logins) == 1  # the queue's client used the token submit's client got

    # A token the registry no longer accepts (expired, or the registry restarted): the
    # client that meets the 401 logs in again and shares the new token.
    pub = public_hex(unlock_signer(desk.ctx, None))
    desk.ctx.tokens.put(desk.ctx.registry_url, pub, "stale-token")
    b = desk.add("b", {"b.txt": b"second\n"})
    desk.submit(b)
    desk.queue().run()
    assert desk.state(b) == "accepted"
    assert len(logins) == 2
    assert desk.ctx.tokens.get(desk.ctx.registry_url, pub) == logins[1]


def test_snapshot_is_immutable_and_jobs_are_persisted(desk: Desk) -> None:
    item = desk.add("ds", FILES)
    desk.submit(item)
    snap = desk.queue().snapshot()
    with pytest.raises(AttributeError):
        snap.jobs[0].state = "done"  # type: ignore[misc]
    with desk.ctx.db.session() as s:
        rows = s.scalars(select(UploadJob).where(UploadJob.item_id == item)).all()
        assert sorted(r.sha256 for r in rows) == sorted({sha256(v) for v in FILES.values()})
        (small,) = [r for r in rows if r.sha256 == sha256(FILES["small.txt"])]
        assert sorted(small.paths) == ["copy/small.txt", "small.txt"]


def test_memory_stays_flat_while_streaming_big_chunks(
    desk: Desk, registry: RegistryProcess
) -> None:
    """A 96 MiB file in 32 MiB chunks: traced allocations stay far below one chunk."""
    import tracemalloc

    from app.services.catalogue import ImportRequest

    folder = desk.root / "big"
    folder.mkdir()
    big = folder / "sparse.bin"
    with open(big, "wb") as fh:
        fh.truncate(96 * 1024 * 1024)
    item = CatalogueService(desk.ctx).add(ImportRequest(paths=[folder], title="big")).id
    desk.submit(item)
    queue = desk.queue(chunk_size=32 * 1024 * 1024, concurrency=1)
    tracemalloc.start()
    try:
        queue.run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        queue.close()
    assert desk.state(item) == "accepted"
    assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
