"""Usage and rewards answers of the wrong shape are 'unreadable' at the edge, never half-used."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from app.domain.errors import RegistryUnavailable
from app.registry_client import usage
from app.registry_client.http import ApiRefused


class FakeHttp:
    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        self.calls.append((path, dict(kw.get("params", {}))))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeClient:
    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.http = FakeHttp(*answers)


ENTRY = {
    "cursor": "7",
    "eventId": "e1",
    "contributionId": "c1",
    "modelId": "m1",
    "method": "influence",
    "amountMicro": 1234,
    "at": "2026-11-20T10:00:00Z",
    "demo": False,
}


def test_a_page_of_rewards_is_parsed_exactly() -> None:
    client = FakeClient({"items": [ENTRY], "nextCursor": "7", "hasMore": False})
    page = usage.rewards_after(client, "6")  # type: ignore[arg-type]
    (e,) = page.items
    assert (e.cursor, e.amount_micro, e.at.tzinfo is not None) == ("7", 1234, True)
    assert client.http.calls == [("/v1/me/rewards", {"limit": usage.REWARDS_PAGE, "after": "6"})]


def test_a_registry_with_smaller_pages_is_asked_for_a_page_it_allows() -> None:
    too_large = ApiRefused(422, "invalid_request", "limit: less than or equal to 1000")
    client = FakeClient(too_large, {"items": [ENTRY], "nextCursor": "7", "hasMore": False})
    page = usage.rewards_after(client, "6")  # type: ignore[arg-type]
    assert [e.cursor for e in page.items] == ["7"]
    assert [c[1]["limit"] for c in client.http.calls] == [usage.REWARDS_PAGE, 1000]
    with pytest.raises(ApiRefused):  # any other refusal is the registry's answer
        usage.rewards_after(FakeClient(ApiRefused(403, "forbidden", "no")), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"amountMicro": "1234"},  # text, not a number
        {"amountMicro": True},  # a bool is not an amount
        {"amountMicro": -1},
        {"at": "yesterday"},
        {"at": "2026-11-20T10:00:00"},  # no timezone
        {"cursor": None},
        {"demo": "no"},
    ],
)
def test_a_malformed_reward_is_unreadable(bad: dict[str, Any]) -> None:
    client = FakeClient({"items": [{**ENTRY, **bad}], "nextCursor": "7", "hasMore": False})
    with pytest.raises(RegistryUnavailable):
        usage.rewards_after(client, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "answer",
    [
        {"items": "nope"},
        {"items": [ENTRY], "nextCursor": 7, "hasMore": True},
        {},
    ],
)
def test_a_malformed_page_is_unreadable(answer: dict[str, Any]) -> None:
    with pytest.raises(RegistryUnavailable):
        usage.rewards_after(FakeClient(answer), None)  # type: ignore[arg-type]


def test_usage_window_and_its_garbage() -> None:
    good = {
        "contributionId": "c1",
        "bucket": "day",
        "since": "2026-11-01",
        "until": "2026-11-26",
        "series": [
            {
                "modelId": "m1",
                "method": "retrieval",
                "points": [{"start": "2026-11-02", "events": 3, "sharePpm": 5, "rewardMicro": 9}],
            }
        ],
        "totals": {"events": 3, "rewardMicro": 9},
    }
    w = usage.usage_window(FakeClient(good), "c1", since=date(2026, 11, 1))  # type: ignore[arg-type]
    assert w.points[0].start == date(2026, 11, 2) and w.points[0].reward_micro == 9
    for broken in (
        {**good, "series": {"not": "a list"}},
        {**good, "since": "2026-13-01"},
        {**good, "series": [{"modelId": "m1", "method": "x", "points": [{"start": "x"}]}]},
        {**good, "series": [{"modelId": "m1", "method": "x", "points": [None]}]},
    ):
        with pytest.raises(RegistryUnavailable):
            usage.usage_window(FakeClient(broken), "c1")  # type: ignore[arg-type]


GOOD_POINT = {"start": "2026-11-02", "events": 3, "sharePpm": 5, "rewardMicro": 9}


def _window(cid: str) -> dict[str, Any]:
    return {
        "contributionId": cid,
        "since": "2026-11-01",
        "until": "2026-11-26",
        "series": [{"modelId": "m1", "method": "retrieval", "points": [dict(GOOD_POINT)]}],
    }


def test_many_windows_in_one_read_and_their_garbage() -> None:
    """One answer per contribution asked, each parsed (and refused) like a single window;
    a list of the wrong length or shape is unreadable."""
    client = FakeClient({"windows": [_window("c1"), _window("c2")]})
    read = usage.usage_windows(client, ["c1", "c2"], since=date(2026, 11, 1))  # type: ignore[arg-type]
    assert [(w.contribution_id, w.points[0].events) for w in read] == [("c1", 3), ("c2", 3)]
    assert client.http.calls == [
        ("/v1/me/usage-windows",
         {"contribution": ["c1", "c2"], "bucket": "day", "since": "2026-11-01"})
    ]  # fmt: skip
    bad_point = _window("c2")
    bad_point["series"][0]["points"][0]["events"] = -1
    for broken in (
        {"windows": [_window("c1")]},  # one answer for two asked
        {"windows": [_window("c1"), _window("c2"), _window("c3")]},
        {"windows": {"c1": _window("c1")}},
        {"windows": [_window("c1"), None]},
        {"nothing": []},
        {"windows": [_window("c1"), bad_point]},
    ):
        with pytest.raises(RegistryUnavailable):
            usage.usage_windows(FakeClient(broken), ["c1", "c2"], since=date(2026, 11, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        usage.usage_windows(FakeClient(), [], since=date(2026, 11, 1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"events": -1}, "'events' is negative"),
        ({"sharePpm": True}, "'sharePpm' missing or of the wrong type"),
        ({"rewardMicro": 2**63}, "'rewardMicro' is larger than"),
        ({"events": 3.0}, "'events' missing or of the wrong type"),
        ({"start": None}, "'start' missing or of the wrong type"),
        ({"start": "2026-11-31"}, "'start' is not a date"),
    ],
)
def test_a_bad_usage_point_is_refused_naming_its_field(change: dict[str, Any], named: str) -> None:
    points = [GOOD_POINT, {**GOOD_POINT, "start": "2026-11-03", **change}]
    body = {
        "contributionId": "c1",
        "since": "2026-11-01",
        "until": "2026-11-26",
        "series": [{"modelId": "m1", "method": "retrieval", "points": points}],
    }
    with pytest.raises(RegistryUnavailable) as caught:
        usage.usage_window(FakeClient(body), "c1")  # type: ignore[arg-type]
    assert named in str(caught.value.hint)
    body["series"][0]["points"] = [GOOD_POINT, {**GOOD_POINT, "events": 2**63 - 1}]  # type: ignore[index]
    w = usage.usage_window(FakeClient(body), "c1")  # type: ignore[arg-type]
    assert [p.events for p in w.points] == [3, 2**63 - 1]


def test_models_are_read_page_after_page() -> None:
    client = FakeClient(
        {"items": [{"id": "a", "name": "A", "demo": True}], "nextCursor": "a", "hasMore": True},
        {"items": [{"id": "b", "name": "B"}], "nextCursor": "b", "hasMore": False},
    )
    models = list(usage.all_models(client))  # type: ignore[arg-type]
    assert [(m.id, m.demo) for m in models] == [("a", True), ("b", False)]
    assert client.http.calls[1] == ("/v1/models", {"limit": 200, "after": "a"})


@pytest.mark.parametrize(
    ("change", "usual"),
    [
        ({}, True),
        ({"at": "2026-11-20T12:00:00+02:00", "demo": True, "cursor": "0"}, True),
        ({"amountMicro": True}, False),
        ({"amountMicro": 2**63}, False),
        ({"modelId": "no spaces"}, False),
        ({"eventId": ""}, False),
        ({"at": "2026-11-20T10:00:00"}, False),
        ({"cursor": "１２"}, False),  # digits, not ASCII ones
    ],
)
def test_the_usual_page_is_read_in_one_go_as_entry_by_entry(
    change: dict[str, Any], usual: bool
) -> None:
    """The one-loop read of a page gives what parse_reward gives, and leaves anything else
    to it (which says what is wrong)."""
    raw = [ENTRY, {**ENTRY, **change}]
    got = usage._usual_rewards(raw)
    if usual:
        assert got == tuple(usage.parse_reward(i) for i in raw)
    else:
        assert got is None


@pytest.mark.parametrize(
    ("at", "kept"),
    [
        ("2026-11-20T10:00:00.123456Z", True),  # the log's form: kept as received
        ("0999-01-01T00:00:00.000001Z", True),
        ("2026-11-20T10:00:00Z", False),  # no microseconds
        ("2026-11-20T10:00:00.123456+00:00", False),
        ("2026-11-20T12:00:00.123456+02:00", False),
        ("2026-11-20T10:00:00.123Z", False),
        ("2026-W47-5T10:00:00.123456Z", False),  # an ISO week date of the same length
        ("2026-11-20 10:00:00.123456Z", False),
        ("2026-11-20T10:00:00,123456Z", False),
    ],
)
def test_the_time_text_is_kept_only_in_the_logs_form_and_says_what_formatting_says(
    at: str, kept: bool
) -> None:
    """Both reads keep `at` as received only when it is "YYYY-MM-DDTHH:MM:SS.ffffffZ"; the
    log's text and the stored text taken from it are those formatted from the parsed time."""
    from app.services.transparency.leaves import at_log_text, at_stored_text, at_z

    raw = {**ENTRY, "at": at}
    try:
        one = usage.parse_reward(raw)
    except RegistryUnavailable:
        assert not kept
        return
    (usual,) = usage._usual_rewards([raw]) or (one,)
    for e in (one, usual):
        assert e.at_text == (at if kept else "")
        assert at_log_text(e) == at_z(e.at)
        assert at_stored_text(e) == e.at.isoformat(" ", "microseconds")[:26]
