"""Usage rows as CSV (the CLI and the service the GUI uses) and a contribution's timeline,
against the real registry, then offline."""

from __future__ import annotations

import csv
import json
import signal
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.services.clients import make_client
from app.services.identity import IdentityService
from app.services.rewards import RewardsSync, open_review
from app.services.usage_history import CSV_COLUMNS, contribution_timeline, export_csv, usage_rows
from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    Desk,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    operator_fixture,  # noqa: F401 - fixture 'operator'
    operator_registry_fixture,  # noqa: F401 - fixture 'registry', taking the operator's usage
)
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess
from tests.support.rewards_flow import accepted_items, post_usage, usage_events

pytestmark = pytest.mark.slow


def _owner(desk: Desk) -> str:
    info = IdentityService(desk.ctx).current()
    assert info is not None
    return info.fingerprint


def _summary(desk: Desk) -> dict[str, Any]:
    client = make_client(desk.ctx)
    try:
        return client.http.json("GET", "/v1/me/summary", params={"limit": 1000})
    finally:
        client.close()


def wait_settled(registry: RegistryProcess, operator: Contributor) -> None:
    """Until the registry has settled every event posted (a registry that settles as it
    receives has no settlement endpoint: nothing to wait for)."""
    with httpx.Client(base_url=registry.base_url, timeout=70) as http:
        operator.sign_in(http)
        r = http.get("/v1/usage/settlement", params={"wait": 60}, headers=operator.headers)
        assert r.status_code in (200, 404), r.text[:300]
        if r.status_code == 200:
            assert r.json()["unsettledEvents"] == 0, r.text


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows


def test_csv_totals_equal_the_synced_ledger_and_timeline_offline(
    desk: Desk, registry: RegistryProcess, operator: Contributor, data_dir: Path, tmp_path: Path
) -> None:
    cids = accepted_items(desk, "alpha", "beta")
    post_usage(registry, operator, usage_events("x", cids, 700))  # 1,400 ledger entries
    wait_settled(registry, operator)
    client = make_client(desk.ctx)
    try:
        RewardsSync(desk.ctx, client, _owner(desk)).run()
    finally:
        client.close()
    ledger = _summary(desk)["rewardMicro"]
    review = open_review(desk.ctx, _owner(desk))
    assert review.overview().total_micro == ledger > 0

    # The service (what the GUI's export calls): totals equal the ledger, micro-unit exact.
    out = tmp_path / "usage.csv"
    report = export_csv(review, out)
    rows = _read(out)
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert report.rows == len(rows) > 0
    assert sum(int(r["earned_micro"]) for r in rows) == report.earned_micro == ledger
    assert sum(int(r["events"]) for r in rows) == report.events == 1400
    # effective usage: one per event, split over its two contributions (exact decimals)
    share = sum(int(r["effective_usage"].replace(".", "")) for r in rows)
    assert share == report.share_ppm == 700 * 1_000_000
    assert {r["earned"] for r in rows if r["earned_micro"] == "1"} <= {"0.000001"}
    keys = [(r["day"], r["contribution_id"], r["model_id"], r["method"]) for r in rows]
    assert len(set(keys)) == len(keys) and keys == sorted(keys)

    # The CLI writes the same file, offline (the registry is stopped).
    registry.kill(signal.SIGTERM)
    cli_out = tmp_path / "cli.csv"
    res = run_cli(
        "--registry", registry.base_url, "rewards", "--csv", str(cli_out), data_dir=data_dir
    )
    assert res.code == 0, res.err
    assert cli_out.read_bytes() == out.read_bytes()
    assert f"{len(rows):,} rows" in res.out

    # A range: only its days, and the parts add up to the whole.
    days = sorted({r["day"] for r in rows})
    mid = date.fromisoformat(days[len(days) // 2])
    early = usage_rows(review, until=mid)
    late = usage_rows(review, since=date.fromordinal(mid.toordinal() + 1))
    assert all(r.day <= mid for r in early) and all(r.day > mid for r in late)
    assert sum(r.earned_micro for r in early) + sum(r.earned_micro for r in late) == ledger
    res = run_cli(
        "--registry",
        registry.base_url,
        "rewards",
        "--csv",
        str(cli_out),
        "--since",
        days[0],
        "--until",
        mid.isoformat(),
        "--json",
        data_dir=data_dir,
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["earnedMicro"] == sum(r.earned_micro for r in early)

    # Bad input: clear usage errors, nothing written.
    bad = run_cli(
        "rewards", "--csv", str(tmp_path / "b.csv"), "--since", "2026-13-01", data_dir=data_dir
    )
    assert bad.code == 2 and "is not a day" in bad.err
    swapped = run_cli(
        "--registry",
        registry.base_url,
        "rewards",
        "--csv",
        str(tmp_path / "b.csv"),
        "--since",
        "2026-02-01",
        "--until",
        "2026-01-01",
        data_dir=data_dir,
    )
    assert swapped.code == 2 and "after --until" in swapped.err
    assert not (tmp_path / "b.csv").exists()
    alone = run_cli(
        "--registry", registry.base_url, "rewards", "--since", "2026-01-01", data_dir=data_dir
    )
    assert alone.code == 2 and "--csv" in alone.err

    # The timeline of item 1, offline: catalogue milestones, first use, first reward, months.
    timeline = contribution_timeline(desk.ctx, 1, review)
    kinds = [m.kind for m in timeline.milestones]
    # (the test's usage is backdated 30 days, so it comes before the catalogue's events)
    ours = [k for k in kinds if k in ("catalogued", "signed", "submitted", "accepted")]
    assert ours == ["catalogued", "signed", "submitted", "accepted"]
    assert kinds.count("first-use") == 1 and kinds.count("first-reward") == 1
    assert [m.text for m in timeline.milestones if m.kind == "first-use"] == [
        "First used by Sync Model"
    ]
    alpha = cids[0]
    assert sum(m.earned_micro for m in timeline.months) == sum(
        int(r["earned_micro"]) for r in rows if r["contribution_id"] == alpha
    )
    assert sum(m.events for m in timeline.months) == 700
    text = run_cli("--registry", registry.base_url, "history", "1", data_dir=data_dir)
    assert text.code == 0, text.err
    assert "Catalogued" in text.out and "First used by Sync Model" in text.out
    assert "Monthly totals" in text.out and "First reward" in text.out
    body = json.loads(
        run_cli("--registry", registry.base_url, "history", "1", "--json", data_dir=data_dir).out
    )
    assert body["contributionId"] == alpha and body["months"]
