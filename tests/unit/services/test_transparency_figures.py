"""Reported figures against the ledger entries (app.services.transparency.figures): a figure
read while the registry settled may count a later settlement than the entries fetched before
it, never anything else."""

from __future__ import annotations

from app.services.transparency.figures import Key, Row, matching_prefix, settlement_of

DAY1: Key = ("d1", "m", "x")
DAY2: Key = ("d2", "m", "x")


def _match(
    rows_before: list[Row], rows_after: list[Row], actual: dict[Key, int], floor: int
) -> tuple[int | None, int]:
    stored = list(rows_before)
    calls = []

    def catch_up() -> None:
        calls.append(1)
        stored[:] = rows_after

    def totals() -> dict[Key, int]:  # every stored entry (the floor is at or after them)
        out: dict[Key, int] = {}
        for _seq, key, amount in stored:
            out[key] = out.get(key, 0) + amount
        return out

    position, _expected = matching_prefix(
        totals,
        lambda: list(stored),
        actual,
        lambda e: set(actual) | set(e),
        lambda: floor,
        catch_up,
    )
    return position, len(calls)


def test_settlement_positions_from_entry_names() -> None:
    assert settlement_of("s120") == 120
    assert settlement_of("evt-1") == 0  # an entry written before settlement counts from the start
    assert settlement_of("s") == 0 and settlement_of("s12x") == 0
    # "s" and 1 to 18 ASCII digits, nothing else (what the registry's settler names them)
    assert settlement_of("s" + "9" * 18) == 10**18 - 1 and settlement_of("s" + "9" * 19) == 0
    assert settlement_of("s007") == 7 and settlement_of("S7") == 0
    for other in ("s\u0661", "s\u00b2", "s-1", "s+1", "s 1", " s1", "s1 ", "s1\n", ""):
        assert settlement_of(other) == 0, other


def test_figure_equal_to_the_entries_through_the_floor_needs_no_catch_up() -> None:
    rows = [(0, DAY1, 5), (10, DAY1, 7), (20, DAY2, 3)]
    assert _match(rows, rows, {DAY1: 12, DAY2: 3}, floor=20) == (-1, 0)  # all stored entries


def test_figure_counting_a_later_settlement_matches_after_the_catch_up() -> None:
    before = [(10, DAY1, 7)]
    after = [*before, (30, DAY1, 2), (40, DAY2, 4)]
    assert _match(before, after, {DAY1: 9}, floor=10) == (30, 1)  # settled through 30
    assert _match(before, after, {DAY1: 9, DAY2: 4}, floor=10) == (40, 1)


def test_figure_matching_no_prefix_of_settlements_fails() -> None:
    before = [(10, DAY1, 7)]
    after = [*before, (30, DAY1, 2)]
    assert _match(before, after, {DAY1: 8}, floor=10)[0] is None  # changed by one
    assert _match(before, after, {}, floor=10)[0] is None  # an entry the figure leaves out
    # entries through the floor are always counted: a figure of an older state does not match
    assert _match(after, after, {DAY1: 7}, floor=30)[0] is None


def test_entries_through_the_floor_fetched_late_are_counted() -> None:
    """The figure names a watermark the entries fetched before it had not reached yet."""
    before = [(10, DAY1, 7)]
    after = [*before, (20, DAY1, 2)]
    assert _match(before, after, {DAY1: 9}, floor=20) == (20, 1)
