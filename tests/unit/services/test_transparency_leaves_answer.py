"""A leaves answer (POST /v1/log/leaves) as the sync reads it (transparency.sync.parse_leaves):
the usual answer decoded in one step gives what the generic parse and check give; anything else
takes that path and is refused with what is wrong with it (a leaf not asked for, an index
outside the tree, a leaf that is not base64, no list, JSON nested too deep)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from app.domain.errors import RegistryUnavailable
from app.services.transparency.sync import _checked_leaves, parse_leaves
from app.tlog import MalformedError

SIZE = 1000
LEAVES = [(str(n), n * 3, json.dumps({"id": n, "é": "ü"}).encode()) for n in range(1, 40)]
ASKED = {e for e, _i, _l in LEAVES} | {"999"}


def _answer(body: Any) -> requests.Response:
    resp = requests.Response()
    resp.status_code = 200
    resp._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return resp


def _usual(leaves: list[tuple[str, Any, Any]] = LEAVES, **more: Any) -> dict[str, Any]:
    return {
        "treeSize": SIZE,
        "checkpoint": "note",
        "leaves": [
            {"entryId": e, "leafIndex": i,
             "leaf": base64.b64encode(leaf).decode() if isinstance(leaf, bytes) else leaf}
            for e, i, leaf in leaves
        ],
        "missing": ["999"],
        **more,
    }  # fmt: skip


def test_the_usual_answer_gives_what_the_generic_check_gives() -> None:
    body = _usual()
    assert parse_leaves(_answer(body), ASKED, SIZE) == LEAVES
    assert _checked_leaves(body, ASKED, SIZE) == LEAVES
    # a field the usual answer has not: the generic path, same leaves
    assert parse_leaves(_answer(_usual(note="new field")), ASKED, SIZE) == LEAVES


@pytest.mark.parametrize(
    ("leaves", "why"),
    [
        ([("1000", 3, b"{}")], "a leaf for an entry that was not asked"),
        ([("1", SIZE, b"{}")], f"leafIndex {SIZE} is not in the tree"),
        ([("1", -1, b"{}")], "leafIndex -1 is not in the tree"),
        ([("1", "3", b"{}")], "leafIndex 3 is not in the tree"),
        ([("1", 3, "not base64!")], "leaf is not base64"),
        ([("1", 3, 17)], "leaf is not a base64 string"),
    ],
)
def test_an_answer_that_is_not_the_usual_says_what_is_wrong(
    leaves: list[tuple[str, Any, Any]], why: str
) -> None:
    with pytest.raises(MalformedError, match=why):
        parse_leaves(_answer(_usual([*LEAVES[:3], *leaves])), ASKED, SIZE)


def test_no_list_of_leaves_or_json_too_deep_is_refused() -> None:
    with pytest.raises(MalformedError, match="no list of leaves"):
        parse_leaves(_answer({"leaves": {"1": "x"}}), ASKED, SIZE)
    deep = b'{"leaves": [], "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(RegistryUnavailable):
        parse_leaves(_answer(deep), ASKED, SIZE)
