"""The upload queue's parts on their own (the integration tests drive them through the
queue against a real registry): planned batches and job state changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.domain.states import JobKind, JobState, TaskKind
from app.services.catalogue import CatalogueService, ImportRequest
from app.services.context import ServiceContext
from app.services.uploads.jobs import JobTable
from app.services.uploads.link import RegistryLink
from app.services.uploads.options import QueueOptions
from app.services.uploads.plans import Plans
from app.services.uploads.progress import Events, QueueEvent, RegistryStatus
from app.services.uploads.runtime import Runtime
from app.store.queue_models import UploadJob

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    ctx = ServiceContext(tmp_path / "desk", UNREACHABLE)
    runtime = Runtime(ctx, QueueOptions(), None, None)
    yield runtime
    runtime.close()
    ctx.close()


def test_plans_are_taken_lowest_contribution_first_and_as_batch_tasks(rt: Runtime) -> None:
    plans = Plans(rt, RegistryLink(rt, Events()))
    plans.add(7, [(1, 2), (3,)])
    plans.add(5, [(10, 11)])
    assert plans.planned_ids() == {1, 2, 3, 10, 11}
    tasks = plans.take(2)
    assert [(t.kind, t.item_id, t.job_ids) for t in tasks] == [
        (TaskKind.BATCH, 5, (10, 11)),
        (TaskKind.BATCH, 7, (1, 2)),
    ]
    assert plans.planned_ids() == {3}
    plans.drop()
    assert plans.planned_ids() == set() and plans.take(5) == []


def test_a_worker_takes_the_next_batch_only_while_online_and_running(rt: Runtime) -> None:
    link = RegistryLink(rt, Events())
    plans = Plans(rt, link)
    plans.add(1, [(1,), (2,), (3,)])
    assert plans.next_for_worker(1) == ()  # registry status unknown yet
    link.went_online()
    assert link.status is RegistryStatus.ONLINE
    assert plans.next_for_worker(1) == (1,)
    assert plans.planned_ids() == {1, 2, 3}  # in hand until claimed: not planned again
    plans.release_worker()
    assert plans.planned_ids() == {2, 3}
    rt.stop.set()
    assert plans.next_for_worker(1) == ()
    rt.stop.clear()
    link.went_offline(OSError("connection refused"))
    assert plans.next_for_worker(1) == ()


def _jobs(ctx: ServiceContext, tmp_path: Path) -> list[int]:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    item = CatalogueService(ctx).add(ImportRequest(paths=[folder], title="t")).id
    with ctx.db.session() as s:
        rows = [
            UploadJob(item_id=item, kind=JobKind.BLOB, sha256=f"{n:064x}", state=state)
            for n, state in enumerate((JobState.PENDING, JobState.UPLOADING, JobState.FAILED))
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def test_set_states_moves_only_jobs_in_the_given_states_and_drops_plans(
    rt: Runtime, tmp_path: Path
) -> None:
    ids = _jobs(rt.ctx, tmp_path)
    events = Events()
    seen: list[QueueEvent] = []
    events.subscribe(seen.append)
    link = RegistryLink(rt, events)
    plans = Plans(rt, link)
    plans.add(1, [tuple(ids)])
    stop = rt.job_stops[ids[1]] = threading.Event()
    table = JobTable(rt, link, plans, events)
    moved = table.set_states(
        [UploadJob.id.in_(ids)], JobState.PAUSED, (JobState.PENDING, JobState.UPLOADING)
    )
    assert moved == 2
    with rt.ctx.db.session() as s:
        states = dict(s.execute(select(UploadJob.id, UploadJob.state)).all())
    assert [states[i] for i in ids] == ["paused", "paused", "failed"]
    assert stop.is_set()  # the in-flight upload of a paused job is abandoned
    assert plans.planned_ids() == set()
    assert sorted((e.job_id, e.message) for e in seen) == [(ids[0], "paused"), (ids[1], "paused")]
    assert rt.wake.is_set()
