"""Small-blob batches planned ahead, per contribution.

The scheduler plans every small pending blob of a contribution in one query and each worker
that finishes a batch takes the next one itself, without going back through the scheduler
(per batch that saves two queries over thousands of rows and the workers' idle time between).
The jobs stay pending in the database until a worker claims them, so a plan is only a hint:
any change of job states drops all plans (JobTable.set_states), and a job claimed elsewhere is
simply not claimed again.
"""

from __future__ import annotations

import threading
from collections import deque

from app.domain.states import TaskKind
from app.services.uploads.link import RegistryLink
from app.services.uploads.options import Task
from app.services.uploads.progress import RegistryStatus
from app.services.uploads.runtime import Runtime


class Plans:
    def __init__(self, rt: Runtime, link: RegistryLink) -> None:
        self._rt = rt
        self._link = link
        self._lock = threading.Lock()
        self._plans: dict[int, deque[tuple[int, ...]]] = {}
        self._in_hand: dict[int, tuple[int, ...]] = {}  # worker thread → its planned batch

    def add(self, item_id: int, batches: list[tuple[int, ...]]) -> None:
        if batches:
            with self._lock:
                self._plans.setdefault(item_id, deque()).extend(batches)

    def take(self, limit: int) -> list[Task]:
        """Up to `limit` planned batches, as tasks (lowest contribution id first)."""
        out: list[Task] = []
        with self._lock:
            for item_id in sorted(self._plans):
                while len(out) < limit and (ids := self._pop(item_id)):
                    out.append(Task(TaskKind.BATCH, ids, item_id))
        return out

    def _pop(self, item_id: int) -> tuple[int, ...]:
        """The next planned batch of a contribution, or (); caller holds self._lock."""
        plan = self._plans.get(item_id)
        if not plan:
            return ()
        ids = plan.popleft()
        if not plan:
            del self._plans[item_id]
        return ids

    def planned_ids(self) -> set[int]:
        """Jobs of planned batches and of those a worker took from a plan (not claimed yet
        maybe): the scheduler must not plan them again."""
        with self._lock:
            ids = {jid for plan in self._plans.values() for batch in plan for jid in batch}
            ids.update(jid for batch in self._in_hand.values() for jid in batch)
        return ids

    def drop(self) -> None:
        with self._lock:
            self._plans.clear()

    def next_for_worker(self, item_id: int) -> tuple[int, ...]:
        """The next planned batch of the contribution for this worker, or () when there is
        none or the worker should go back to the scheduler (stopping, registry offline)."""
        if self._rt.stop.is_set() or self._rt.fatal is not None:
            return ()
        if self._link.status is not RegistryStatus.ONLINE:
            return ()
        with self._lock:
            ids = self._pop(item_id)
            if ids:
                self._in_hand[threading.get_ident()] = ids
        return ids

    def release_worker(self) -> None:
        """This worker thread holds no planned batch any more."""
        with self._lock:
            self._in_hand.pop(threading.get_ident(), None)
