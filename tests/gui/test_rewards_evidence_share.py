"""The GUI runs one evidence share at a time (GuiRewards.continue_evidence on a worker after each
sync): a sync that finishes while a share is still running does not start a second one beside
it, and every handed-over sync's signed-in client is closed, whether it was continued, dropped
for a newer one, or skipped."""

from __future__ import annotations

import threading
from typing import Any, cast

from app.services.evidence import EvidenceReport
from app.ui.adapters.rewards_adapter import GuiRewards


class _Client:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Sync:
    """Stands in for a finished RewardsSync: its share blocks until `release` is set."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.client = _Client()
        self.release = release
        self.started = threading.Event()
        self.shares = 0

    def continue_evidence(self) -> EvidenceReport:
        self.shares += 1
        self.started.set()
        if self.release is not None:
            assert self.release.wait(30)
        return cast(EvidenceReport, "report")


def _rewards() -> GuiRewards:
    return GuiRewards(cast(Any, None), demo_seed=lambda: None)


def test_a_second_share_is_not_started_while_one_runs_and_every_client_is_closed() -> None:
    rewards = _rewards()
    release = threading.Event()
    first = _Sync(release)
    rewards._hand_over(cast(Any, first))
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(rewards.continue_evidence()))
    worker.start()
    assert first.started.wait(30)

    second = _Sync()
    rewards._hand_over(cast(Any, second))
    assert rewards.continue_evidence() is None  # a share is running: not a second beside it
    assert second.shares == 0 and second.client.closed
    assert not first.client.closed  # the running share still uses its client

    release.set()
    worker.join(30)
    assert results == ["report"] and first.shares == 1 and first.client.closed

    third = _Sync()
    rewards._hand_over(cast(Any, third))
    assert rewards.continue_evidence() == "report"  # the guard was released
    assert third.shares == 1 and third.client.closed


def test_a_sync_never_continued_is_closed_when_a_newer_one_is_handed_over() -> None:
    rewards = _rewards()
    older, newer = _Sync(), _Sync()
    rewards._hand_over(cast(Any, older))
    rewards._hand_over(cast(Any, newer))
    assert older.client.closed and older.shares == 0
    assert rewards.continue_evidence() == "report" and newer.shares == 1
    assert rewards.continue_evidence() is None  # nothing left to continue
