"""The settler splits a chunk's fees all at once (numpy over the events with the same number of
attributions); every event's amounts and shares must equal the one-event split
(`split_integers`, the old synchronous path's arithmetic) exactly, ties, overflow-sized
products, zero weights and all."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.rewards import PPM, split_integers
from registry.settlement import _split_chunk
from registry.usage_rules import MAX_FEE_MICRO, MAX_WEIGHT


def _one_by_one(pools: list[int], weights: list[list[int]]) -> tuple[list[list[int]], ...]:
    amounts = [split_integers(p, w) for p, w in zip(pools, weights, strict=True)]
    shares = [w if sum(w) == PPM else split_integers(PPM, w) for w in weights]
    return amounts, shares


def _parsed(weights: list[list[int]]) -> list[list[list[object]]]:
    return [[[f"c{i}", w, "influence"] for i, w in enumerate(ws)] for ws in weights]


# weights from a small set make equal remainders (ties) common
_weight = st.one_of(
    st.sampled_from([0, 1, 2, 3, 250_000, 333_333, 500_000, PPM]),
    st.integers(0, MAX_WEIGHT),
)
_event = st.tuples(
    st.one_of(st.integers(0, 10_000), st.integers(0, MAX_FEE_MICRO)),
    st.lists(_weight, min_size=1, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, min_size=1, max_size=40))
def test_the_chunk_split_equals_the_one_event_split(events: list[tuple[int, list[int]]]) -> None:
    events = [(p, w) for p, w in events if sum(w) > 0]  # intake refuses all-zero weights
    pools = [p for p, _ in events]
    weights = [w for _, w in events]
    assert _split_chunk(pools, _parsed(weights)) == _one_by_one(pools, weights)


def test_ties_go_to_the_lower_index_in_every_row() -> None:
    # 3 units over 4 equal weights, 1 unit over 3, all but one unit over 5: the numpy rows
    pools = [3, 1, 4, 7, 10**15]
    weights = [[1, 1, 1, 1], [5, 5, 5], [2, 2, 2, 2, 2], [1, 1, 1, 1, 1, 1], [MAX_WEIGHT, 3]]
    amounts, shares = _split_chunk(pools, _parsed(weights))
    assert amounts[:4] == [[1, 1, 1, 0], [1, 0, 0], [1, 1, 1, 1, 0], [2, 1, 1, 1, 1, 1]]
    assert (amounts, shares) == _one_by_one(pools, weights)


def test_weights_adding_up_to_zero_fail_as_the_one_event_split_does() -> None:
    # intake refuses them (weights_all_zero, no_attributions); were one stored, settling it
    # fails loudly, as the one-event split did
    for pool in (0, 1):
        for weights in ([0, 0], []):
            with pytest.raises(ValueError):
                _split_chunk([5, pool], _parsed([[1, 1], weights]))


def test_without_numpy_every_event_is_split_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's bundle leaves numpy out; its embedded demo registry settles all the same."""
    monkeypatch.setattr("registry.settlement.np", None)
    pools, weights = [1_000, 7, 10**12], [[1, 1, 1], [250_000, 750_000], [3, 0, 5]]
    assert _split_chunk(pools, _parsed(weights)) == _one_by_one(pools, weights)
