"""app.domain.boundedjson: the depth found without parsing equals the real nesting depth, and
the limits (depth, finite numbers, no NaN/Infinity, integer digits) hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.boundedjson import MAX_JSON_DEPTH, JsonLimitError, has_nul, loads, too_deep

# Strings full of brackets, quotes and backslashes: what could fool a scan of the raw text.
tricky_text = st.text(alphabet='[]{}"\\ab\x00\u2028', max_size=6)
values = st.recursive(
    st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(value=values, limit=st.integers(min_value=0, max_value=8), ascii_only=st.booleans())
def test_too_deep_agrees_with_the_parsed_depth(value: Any, limit: int, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert too_deep(text, limit) == (depth(value) > limit)
    assert too_deep(text.encode("utf-8", "surrogatepass"), limit) == (depth(value) > limit)


def test_nesting_at_and_past_the_limit() -> None:
    at = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert depth(loads(at)) == MAX_JSON_DEPTH
    for text in (
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "[" * 100_000,  # unbalanced: refused before json could recurse into it
    ):
        with pytest.raises(JsonLimitError, match="nested deeper"):
            loads(text)


def test_mixed_brackets_count_one_level_each() -> None:
    """{ { [ [ ] ] } { } } is 4 levels: removing [] must not expose {} in the same pass."""
    text = '{"k":{"k":[[]]},"j":{}}'
    assert not too_deep(text, 4)
    assert too_deep(text, 3)


@pytest.mark.parametrize(
    "text", ["[1e400]", "[-1e400]", "[1E+999]", "[" + "9" * 400 + ".0]", "[NaN]", "[Infinity]"]
)
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(JsonLimitError):
        loads(text)


def test_integers_with_too_many_digits_are_a_limit_error() -> None:
    with pytest.raises(JsonLimitError, match="too many digits"):
        loads("[" + "9" * 5000 + "]")
    assert loads("[" + "9" * 300 + "]") == [int("9" * 300)]


def test_malformed_json_is_still_a_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("[1,")


def test_has_nul_looks_in_keys_and_values_at_any_depth() -> None:
    assert has_nul({"a": [{"b": "x\x00"}]})
    assert has_nul([{"k\x00": 1}])
    assert not has_nul({"a": ["\\u0000", "x"]})
