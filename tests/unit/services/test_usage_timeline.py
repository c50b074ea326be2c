"""Usage rows, CSV and a contribution's timeline from a catalogue copy written directly (no
registry): earned comes from the ledger entries even on days whose usage buckets were never
fetched, a rejection names its reasons, first use per model and first reward are found."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from app.domain.errors import NotFoundError, UsageError
from app.services.catalogue import CatalogueService, ImportRequest
from app.services.context import ServiceContext
from app.services.rewards import RewardsReview
from app.services.usage_history import (
    contribution_timeline,
    export_csv,
    usage_data,
    usage_rows,
    write_csv,
)
from app.store.models import HistoryEntry, Item
from app.store.rewards_models import (
    KnownModel,
    RewardRecord,
    SyncCursor,
    UsageDay,
    ensure_scope,
    url_key,
)
from app.store.rollups import rebuild

KEY = url_key("http://r.invalid")
OWNER = "f" * 64


@pytest.fixture
def ctx(tmp_path: Path) -> ServiceContext:
    c = ServiceContext(tmp_path / "desk", "http://r.invalid")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n")
    item = CatalogueService(c).add(ImportRequest(paths=[folder], title="Birds")).id
    with c.db.session() as s:
        row = s.get(Item, item)
        assert row is not None
        row.registry_id = "c_birds"
        row.registry_url = "http://r.invalid"
        for h in row.history:  # catalogued long before its use
            h.at = datetime(2025, 11, 1, 9, tzinfo=UTC)
        s.add(
            HistoryEntry(
                item_id=item,
                at=datetime(2026, 3, 1, 9, tzinfo=UTC),
                from_state="submitted",
                to_state="rejected",
                event="rejected",
                detail="",
            )
        )
        row.rejection_reasons = [{"code": "license", "message": "no license file"}]
        s.add(
            HistoryEntry(
                item_id=item,
                at=datetime(2026, 3, 2, 9, tzinfo=UTC),
                from_state="submitted",
                to_state="accepted",
                event="accepted",
                detail="",
            )
        )
        s.add(KnownModel(registry_key=KEY, id="m1", name="Model One", description="", demo=False))
        s.add(
            SyncCursor(registry_key=KEY, owner=OWNER, stream="usage:c_birds", cursor="2026-04-30")
        )
        for d, mid, method, events, share, micro in (
            (date(2026, 3, 10), "m1", "influence", 3, 1_500_000, 300),
            (date(2026, 4, 2), "m2", "retrieval", 1, 250_000, 7),
        ):
            s.add(
                UsageDay(
                    registry_key=KEY,
                    contribution_id="c_birds",
                    day=d,
                    model_id=mid,
                    method=method,
                    events=events,
                    share_ppm=share,
                    reward_micro=micro,
                )
            )
        # Ledger entries: the two days above, and one day whose buckets were never fetched.
        for n, (at, mid, method, micro) in enumerate(
            (
                (datetime(2026, 3, 10, 8, tzinfo=UTC), "m1", "influence", 100),
                (datetime(2026, 3, 10, 9, tzinfo=UTC), "m1", "influence", 200),
                (datetime(2026, 4, 2, 23, 59, tzinfo=UTC), "m2", "retrieval", 7),
                (datetime(2025, 12, 31, 12, tzinfo=UTC), "m1", "exact-match", 1_000_001),
            ),
            1,
        ):
            s.add(
                RewardRecord(
                    scope=ensure_scope(s, KEY, OWNER),
                    cursor=str(n),
                    event_id=f"e{n}",
                    contribution_id="c_birds",
                    model_id=mid,
                    method=method,
                    amount_micro=micro,
                    at=at,
                    demo=False,
                )
            )
        s.flush()
        rebuild(s, KEY)  # the rollups of rows written directly, as a sync would keep them
        s.commit()
    return c


def test_rows_take_earned_from_the_ledger_and_add_up_exactly(ctx: ServiceContext) -> None:
    review = RewardsReview(ctx, KEY, OWNER)
    rows = usage_rows(review)
    assert [(r.day, r.model_id, r.method, r.events, r.share_ppm, r.earned_micro) for r in rows] == [
        (date(2025, 12, 31), "m1", "exact-match", 0, 0, 1_000_001),  # no buckets that day
        (date(2026, 3, 10), "m1", "influence", 3, 1_500_000, 300),
        (date(2026, 4, 2), "m2", "retrieval", 1, 250_000, 7),
    ]
    assert sum(r.earned_micro for r in rows) == review.overview().total_micro == 1_000_308
    out = io.StringIO()
    report = write_csv(rows, out)
    assert report.earned_micro == 1_000_308 and report.events == 4
    body = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert body[0]["earned"] == "1.000001" and body[1]["effective_usage"] == "1.500000"
    assert body[0]["catalogue_id"] == "1"
    assert [
        r.day for r in usage_rows(review, since=date(2026, 3, 10), until=date(2026, 3, 10))
    ] == [date(2026, 3, 10)]
    with pytest.raises(UsageError, match="after --until"):
        usage_rows(review, since=date(2026, 4, 1), until=date(2026, 3, 1))
    with pytest.raises(UsageError, match="is a folder"):
        export_csv(review, ctx.data_dir)
    chart = usage_data(review)
    assert chart.models == {"m1": ("Model One", False), "m2": ("m2", False)}
    assert chart.titles == {"c_birds": "#1  Birds"}


def test_timeline_names_the_rejection_first_uses_first_reward_and_months(
    ctx: ServiceContext,
) -> None:
    review = RewardsReview(ctx, KEY, OWNER)
    timeline = contribution_timeline(ctx, 1, review)
    steps = [(m.kind, m.text, m.detail) for m in timeline.milestones]
    assert steps[0][0] == "catalogued"
    assert ("rejected", "Rejected", "no license file") in steps
    assert ("accepted", "Accepted", "") in steps
    assert ("first-use", "First used by Model One", "m1") in steps
    assert ("first-use", "First used by m2", "m2") in steps
    assert ("first-reward", "First reward", "1.000001 units from Model One") in steps
    # Oldest first: the ledger's first use (Dec 2025) comes before the March events.
    kinds = [k for k, _t, _d in steps]
    assert kinds.index("first-reward") < kinds.index("rejected") < kinds.index("accepted")
    assert [(m.month, m.events, m.share_ppm, m.earned_micro) for m in timeline.months] == [
        ("2025-12", 0, 0, 1_000_001),
        ("2026-03", 3, 1_500_000, 300),
        ("2026-04", 1, 250_000, 7),
    ]
    alone = contribution_timeline(ctx, 1, None)  # no identity: the catalogue's events only
    assert [m.kind for m in alone.milestones] == ["catalogued", "rejected", "accepted"]
    with pytest.raises(NotFoundError):
        contribution_timeline(ctx, 99, review)
