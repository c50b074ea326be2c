"""POST /v1/usage's compiled body decoder (msgspec) against the pydantic models it stands in
for: what it accepts it decodes to the same values, what pydantic refuses it refuses (pydantic
then answers), and the answers over HTTP are the same either way."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

import registry.routes.usage as usage_route
from registry.routes.usage import UsageBatch, decode_usage
from tests.registry.test_usage import _OK_EVENT, _WRONG_TYPES, _with, world  # noqa: F401
from tests.support.usage_data import UsageWorld

_C = "c_0123456789abcdef01234567"
_SHA = "a" * 64


def _body(**changes: Any) -> dict[str, Any]:
    attr = {"contributionId": _C, "weight": 1, "method": "influence"}
    return {**_OK_EVENT, "attributions": [attr], **changes}


def _attr(**changes: Any) -> dict[str, Any]:
    return {"contributionId": _C, "weight": 0.5, "method": "retrieval", **changes}


# Well-typed bodies, valid or not per event (those are judged later, event by event).
_ACCEPTED: list[Any] = [
    _body(),
    _body(at="2026-11-26t07:59:58z"),
    _body(at="2026-11-26 07:59:58+05:30"),
    _body(at="2026-11-26T07:59:58.123456789-02:00"),
    _body(at="2026-11-26T07:59:58"),  # no offset: rejected per event (invalid_time)
    _body(at="0001-01-01T00:00:00+05:00"),
    _body(feeMicro=-1),
    _body(feeMicro=10**30),
    _body(eventId="", modelId="ünïcødé ✓"),
    _body(eventId="nul\x00in\x00id"),
    _body(extra={"ignored": [1, 2]}),
    _body(attributions=[]),
    _body(attributions=[_attr(weight=w) for w in (0, -0.0, -3, 1e-7, 2.5e6, 10**40, 1e3)]),
    _body(
        attributions=[
            _attr(evidence={"fileSha256": _SHA, "offset": 0, "length": 5, "spanSha256": _SHA}),
            _attr(method="exact-match", evidence={"fileSha256": _SHA, "excerpt": "x" * 300}),
            _attr(evidence=[1, "two", None, 3.5, {"a": True}]),
            _attr(evidence="text"),
            _attr(evidence=10**20),
            _attr(evidence=None),
            _attr(method="nonsense", contributionId="unknown"),
        ]
    ),
]


def _fields(events: Any) -> list[tuple[Any, ...]]:
    """Every value ingestion reads, with the types of the numbers and the time's offset."""
    out = []
    for e in events:
        at: datetime = e.at
        out.append(
            (
                e.event_id, e.model_id, at, at.utcoffset(), e.fee_micro, type(e.fee_micro),
                [(a.contribution_id, a.weight, type(a.weight), a.method, a.evidence)
                 for a in e.attributions],
            )
        )  # fmt: skip
    return out


@pytest.mark.parametrize("event", _ACCEPTED, ids=range(len(_ACCEPTED)))
def test_decoded_values_are_pydantics(event: dict[str, Any]) -> None:
    raw = json.dumps({"events": [event, _body()]}).encode()
    decoded = decode_usage(raw)
    assert decoded is not None
    assert _fields(decoded) == _fields(UsageBatch.model_validate(json.loads(raw)).events)


@pytest.mark.parametrize(("field", "value"), _WRONG_TYPES)
def test_wrong_types_are_left_to_pydantic(field: str, value: object) -> None:
    raw = json.dumps({"events": [_with(field, value, _C)]}).encode()
    assert decode_usage(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"{}",
        b'{"events": {}}',
        b'{"events": [{"eventId": "x"}]}',
        b'{"events": []} x',
        b"\xef\xbb\xbf" + json.dumps({"events": [_body()]}).encode(),  # BOM: json.loads takes it
        json.dumps({"events": [_body(eventId="\ud800")]}).encode(),  # lone surrogate
        json.dumps({"events": [_body(attributions=[_attr(weight=float("nan"))])]}).encode(),
        json.dumps({"events": [_body(attributions=[_attr(weight=float("inf"))])]}).encode(),
        json.dumps({"events": [_body(at="2026-02-30T00:00:00Z")]}).encode(),
    ],
)
def test_anything_else_is_left_to_pydantic(raw: bytes) -> None:
    assert decode_usage(raw) is None


def test_answers_are_the_same_with_and_without_the_decoder(
    world: UsageWorld,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch with valid events, per-event rejections of every kind the body can carry and a
    duplicate: the same answer through msgspec and through pydantic; wrong types: the same
    422 (that body is refused by msgspec and judged by pydantic)."""
    c = world.ids_of(world.contributors[0])

    def batch(tag: str) -> list[dict[str, Any]]:
        ok = [{"contributionId": c[0], "weight": 1, "method": "influence"}]
        return [
            _body(eventId=f"{tag}1", attributions=ok, at="2026-11-26t07:59:58z"),
            _body(eventId=f"{tag}1", attributions=ok),
            _body(eventId=f"{tag}2", attributions=[_attr(contributionId=c[1], weight=-1)]),
            _body(eventId=f"{tag}3", attributions=ok, at="2026-11-26T07:59:58", feeMicro=-5),
            _body(eventId=f"{tag}4", modelId="nope", attributions=[]),
            _body(
                eventId=f"{tag}5",
                attributions=[
                    _attr(contributionId=c[1], weight=10**40, method="x", evidence="e"),
                    _attr(contributionId="unknown", evidence={"fileSha256": "zz"}),
                ],
            ),
            _body(eventId=f"{tag}6", attributions=[_attr(contributionId=c[2], weight=0)]),
        ]

    def post(body: dict[str, Any]) -> tuple[int, str]:
        r = world.client.post(
            "/v1/usage",
            content=json.dumps(body).encode(),
            headers={**world.operator.headers, "content-type": "application/json"},
        )
        return r.status_code, r.text

    calls: list[int] = []

    def counted(raw: bytes) -> Any:
        calls.append(1)
        return decode_usage(raw)

    monkeypatch.setattr(usage_route, "decode_usage", counted)
    fast = post({"events": batch("a-")})
    bad_fast = post({"events": [_with("weight", True, c[0])]})
    assert len(calls) == 2
    monkeypatch.setattr(usage_route, "decode_usage", lambda raw: None)
    slow = post({"events": batch("b-")})
    bad_slow = post({"events": [_with("weight", True, c[0])]})
    assert fast[0] == 200 and json.loads(fast[1])["rejected"], fast
    assert fast == (slow[0], slow[1].replace('"b-', '"a-'))
    assert bad_fast == bad_slow and bad_fast[0] == 422
