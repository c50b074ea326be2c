"""A sync returns before any of the evidence is read: the events behind the entries are read by
`continue_evidence` afterwards (the GUI on a worker once the numbers are shown, the CLI after
its report), a bounded share at a time that goes on where the last one stopped. A sync with
nothing new reads no usage window and no entry's events. Counted at a relay in front of the
real registry on loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.services.clients import make_client
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    make_desk,
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
)
from tests.integration.faults.proxy import FaultProxy
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import accepted_items, post_usage, window_reads

pytestmark = pytest.mark.slow


def _reads(relay: FaultProxy) -> dict[str, int]:
    """How many usage windows, entries' event pages and ledger pages were read through the
    relay since the last call."""
    counts = {"windows": 0, "events": 0, "ledger": 0, "summary": 0}
    counts["windows"] = len(window_reads(seen.path for seen in relay.seen))
    for seen in relay.seen:
        path = urlsplit(seen.path).path
        if path.startswith("/v1/me/rewards/") and path.endswith("/events"):
            counts["events"] += 1
        elif path == "/v1/me/rewards":
            counts["ledger"] += 1
        elif path == "/v1/me/summary":
            counts["summary"] += 1
    relay.seen.clear()
    return counts


def _events(tag: str, cids: list[str], days_ago: list[int]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "eventId": f"{tag}-{n}",
            "modelId": "sync-model",
            "at": (now - timedelta(days=age, minutes=5)).isoformat(),
            "feeMicro": 2_000 + 17 * n,
            "attributions": [{"contributionId": cid, "weight": 1.0, "method": "influence"}],
        }
        for n, (cid, age) in enumerate((c, d) for c in cids for d in days_ago)
    ]


def _owner(desk: Desk) -> str:
    owner = IdentityService(desk.ctx).current()
    assert owner is not None
    return owner.fingerprint


def test_a_sync_reads_no_evidence_before_it_returns_and_the_continuation_resumes(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    operator: Contributor,
) -> None:
    relay = FaultProxy(registry.port)
    desk = make_desk(tmp_path, data_dir, relay.url)
    client = make_client(desk.ctx)
    try:
        cids = accepted_items(desk, "ash", "birch")
        post_usage(registry, operator, _events("first", cids, [1, 2, 3]))
        relay.seen.clear()
        sync = RewardsSync(desk.ctx, client, _owner(desk))
        first = sync.run()
        assert first.new_entries > 1
        reads = _reads(relay)
        assert reads["windows"] == 2 and reads["ledger"] >= 1
        assert reads["events"] == 0  # the sync returned without reading any evidence
        assert reads["summary"] >= 1  # its figures checked against the new entries
        assert sync.evidence is None

        # The continuation, a share of one event at a time: one entry is read per share.
        share = sync.continue_evidence(max_events=1)
        assert share.events == 1 and share.entries_left == first.new_entries - 1
        assert _reads(relay)["events"] == 1

        # Nothing new: no usage window and no entry's events are read before it returns.
        again = RewardsSync(desk.ctx, client, _owner(desk))
        nothing = again.run()
        assert nothing.new_entries == 0
        # Nor the summary: the entries it sums are the ones it matched last time.
        assert _reads(relay) == {"windows": 0, "events": 0, "ledger": 1, "summary": 0}
        # ... and its continuation goes on where the last share stopped, to the end.
        rest = again.continue_evidence()
        assert rest.events == 6 - 1 and rest.entries_left == 0
        assert _reads(relay)["events"] == first.new_entries - 1
    finally:
        client.close()
        desk.ctx.close()
        relay.close()


def test_the_cli_sync_checks_its_evidence_share_after_the_report_unless_told_not_to(
    tmp_path: Path,
    data_dir: Path,
    isolated_keyring: Path,
    registry: RegistryProcess,
    operator: Contributor,
) -> None:
    desk = make_desk(tmp_path, data_dir, registry.base_url)
    try:
        cids = accepted_items(desk, "ash")
        post_usage(registry, operator, _events("cli", cids, [1, 2]))
        base = ("--registry", registry.base_url, "sync")
        skipped = run_cli(*base, "--no-evidence", "--json", data_dir=data_dir)
        assert skipped.code == 0, skipped.err
        out = json.loads(skipped.out)
        assert out["rewards"]["newEntries"] == 2 and out["evidence"] is None

        text = run_cli(*base, data_dir=data_dir)  # nothing new; the evidence share follows
        assert text.code == 0, text.err
        lines = text.out.splitlines()
        assert lines[0] == "Nothing to sync."
        assert lines[1].startswith("Evidence: 2 events checked against your files")
    finally:
        desk.ctx.close()
