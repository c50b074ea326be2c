"""Exact integer reward arithmetic shared by the registry (ledger) and the app (display checks).

Money is integer micro-units everywhere. Splitting a fee by weights with floats would lose or
invent micro-units; the largest-remainder (Hamilton) method hands out exactly `total`, so the
registry's ledger invariant "ledger total == sum of distributed fees" holds by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import lcm

PPM = 1_000_000


def split_largest_remainder(total: int, weights: Sequence[int | Fraction]) -> list[int]:
    """Split `total` into integer parts proportional to `weights`, summing to `total` exactly.

    Each part first gets the floor of its exact quota `total * w / sum(w)`; the units left over
    go one each to the largest fractional remainders, ties broken by the lower index so the
    result is deterministic. Zero weights always get 0; a higher weight never gets less than a
    lower weight's amount minus one.

    Raises ValueError for a negative total, a negative weight, or a positive total with no
    positive weight (nothing to split it over).
    """
    if total < 0:
        raise ValueError("total must be non-negative")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    return split_integers(total, _as_integers(weights))


def split_integers(total: int, weights: list[int]) -> list[int]:
    """`split_largest_remainder` for weights already known to be non-negative integers (the
    registry's hot path: no type conversion, no re-validation of the weights).

    Remainders are only computed when units are left over. One unit left (or all but one, the
    usual cases for a few weights) needs only max/min; otherwise a stable reverse sort gives
    the order "largest first, lower index among equals" without key tuples.
    """
    wsum = sum(weights)
    if wsum == 0:
        if total == 0:
            return [0] * len(weights)
        raise ValueError("cannot split a positive total over weights that are all zero")
    parts = [total * w // wsum for w in weights]
    left = total - sum(parts)
    if left:
        remainders = [total * w % wsum for w in weights]
        if left == 1:  # index() finds the first, i.e. lowest-index, largest remainder
            parts[remainders.index(max(remainders))] += 1
            return parts
        n = len(weights)
        if left == n - 1:  # all but the last-ranked: the highest-index smallest remainder
            skip = n - 1 - remainders[::-1].index(min(remainders))
            return [p if i == skip else p + 1 for i, p in enumerate(parts)]
        # sorted(reverse=True) is stable: among equal remainders the lower index stays first.
        order = sorted(range(len(weights)), key=remainders.__getitem__, reverse=True)
        for i in order[:left]:
            parts[i] += 1
    return parts


def _as_integers(weights: Sequence[int | Fraction]) -> list[int]:
    """Scale weights to integers with the same ratios (fast integer path for the common case)."""
    if all(isinstance(w, int) for w in weights):
        return [int(w) for w in weights]
    fracs = [Fraction(w) for w in weights]
    denom = lcm(*(f.denominator for f in fracs)) if fracs else 1
    return [int(f * denom) for f in fracs]


def contributor_pool(fee_micro: int, share_ppm: int) -> int:
    """The part of a fee that goes to contributors: floor(fee * share), in micro-units.

    The rest (`fee_micro - contributor_pool(...)`) is the protocol's, so the two always add up
    to the fee exactly.
    """
    if fee_micro < 0:
        raise ValueError("fee must be non-negative")
    if not 0 <= share_ppm <= PPM:
        raise ValueError("share must be between 0 and 1_000_000 ppm")
    return fee_micro * share_ppm // PPM
