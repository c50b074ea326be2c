"""Largest-remainder split and contributor pool: exact, deterministic, fair."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.rewards import PPM, contributor_pool, split_integers, split_largest_remainder

totals = st.integers(min_value=0, max_value=10**15)
int_weights = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40).filter(
    lambda ws: sum(ws) > 0
)
frac_weights = st.lists(
    st.fractions(min_value=0, max_value=1000, max_denominator=10**6), min_size=1, max_size=20
).filter(lambda ws: sum(ws) > 0)


def test_simple_split() -> None:
    assert split_largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert split_largest_remainder(10, [3, 0, 7]) == [3, 0, 7]
    assert split_largest_remainder(7, [1, 2]) == [2, 5]  # 2.33 / 4.67: the larger remainder wins


def test_tie_broken_by_lower_index() -> None:
    assert split_largest_remainder(1, [5, 5, 5]) == [1, 0, 0]
    assert split_largest_remainder(2, [1, 1, 1]) == [1, 1, 0]


def test_fraction_and_int_weights_agree() -> None:
    assert split_largest_remainder(1000, [Fraction(1, 3), Fraction(2, 3)]) == (
        split_largest_remainder(1000, [1, 2])
    )


def test_zero_total_and_all_zero() -> None:
    assert split_largest_remainder(0, [0, 0]) == [0, 0]
    assert split_largest_remainder(0, []) == []
    with pytest.raises(ValueError):
        split_largest_remainder(5, [0, 0])
    with pytest.raises(ValueError):
        split_largest_remainder(5, [])


def test_rejects_negative() -> None:
    with pytest.raises(ValueError):
        split_largest_remainder(-1, [1])
    with pytest.raises(ValueError):
        split_largest_remainder(1, [2, -1])


@given(totals, int_weights)
def test_sum_invariant_and_non_negative(total: int, weights: list[int]) -> None:
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    assert all(p >= 0 for p in parts)
    assert all(p == 0 for p, w in zip(parts, weights, strict=True) if w == 0)


@given(totals, frac_weights)
def test_sum_invariant_fractions(total: int, weights: list[Fraction]) -> None:
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)


@given(totals, int_weights)
def test_parts_within_one_of_exact_quota(total: int, weights: list[int]) -> None:
    parts = split_largest_remainder(total, weights)
    wsum = sum(weights)
    for p, w in zip(parts, weights, strict=True):
        quota = Fraction(total * w, wsum)
        assert quota - 1 < p < quota + 1


@given(totals, int_weights)
def test_higher_weight_never_much_less(total: int, weights: list[int]) -> None:
    parts = split_largest_remainder(total, weights)
    for i, wi in enumerate(weights):
        for j, wj in enumerate(weights):
            if wi > wj:
                assert parts[i] >= parts[j] - 1
            if wi == wj:
                assert abs(parts[i] - parts[j]) <= 1


@given(totals, int_weights)
def test_deterministic_and_scale_invariant(total: int, weights: list[int]) -> None:
    first = split_largest_remainder(total, weights)
    assert split_largest_remainder(total, list(weights)) == first
    assert split_largest_remainder(total, [w * 7 for w in weights]) == first


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=PPM))
def test_pool_plus_protocol_is_fee(fee: int, share: int) -> None:
    pool = contributor_pool(fee, share)
    assert 0 <= pool <= fee
    assert pool + (fee - pool) == fee
    assert pool == fee * share // PPM


def test_pool_examples_and_bounds() -> None:
    assert contributor_pool(1_000_000, 700_000) == 700_000
    assert contributor_pool(3, 700_000) == 2
    assert contributor_pool(5, PPM) == 5
    assert contributor_pool(5, 0) == 0
    with pytest.raises(ValueError):
        contributor_pool(-1, 1)
    with pytest.raises(ValueError):
        contributor_pool(1, PPM + 1)


@given(totals, int_weights)
def test_integer_fast_path_agrees(total: int, weights: list[int]) -> None:
    assert split_integers(total, weights) == split_largest_remainder(total, weights)


def _reference_split(total: int, weights: list[int]) -> list[int]:
    """The textbook method with exact fractions: floors, then the leftover units one each to
    the largest remainders, lower index first among equal ones."""
    quotas = [Fraction(total * w, sum(weights)) for w in weights]
    parts = [q.numerator // q.denominator for q in quotas]
    ranked = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in ranked[: total - sum(parts)]:
        parts[i] += 1
    return parts


# Few weights and small totals: every shortcut of split_integers (no unit left, one left, all
# but one left, the general sort) and many remainder ties.
few_weights = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=5).filter(
    lambda ws: sum(ws) > 0
)


@given(st.integers(min_value=0, max_value=40), few_weights)
def test_split_matches_reference_with_ties(total: int, weights: list[int]) -> None:
    assert split_integers(total, weights) == _reference_split(total, weights)


@given(totals, int_weights)
def test_split_matches_reference(total: int, weights: list[int]) -> None:
    assert split_integers(total, weights) == _reference_split(total, weights)


def test_split_shortcut_examples() -> None:
    assert split_integers(2, [1, 1, 1]) == [1, 1, 0]  # all but one: the last tie loses
    assert split_integers(2, [1, 2, 1, 1, 1]) == [1, 1, 0, 0, 0]  # .33 .67 .33 .33 .33: sort
    assert split_integers(1, [1, 1]) == [1, 0]
    assert split_integers(PPM, [250_000, 250_000, 500_000]) == [250_000, 250_000, 500_000]
