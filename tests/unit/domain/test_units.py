"""One way to write sizes, counts, rates and methods, for the CLI and the GUI alike."""

from __future__ import annotations

import pytest

from app.domain.units import (
    format_count,
    format_duration,
    format_rate,
    format_size,
    method_label,
    plural,
    problem_location,
)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "—"),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (11_441, "11.4 KB"),
        (99_960, "100 KB"),
        (999_960, "1.0 MB"),
        (28_600_000, "28.6 MB"),  # the file the CLI called 27.3 MB and the GUI 28.6 MB
        (312_000_000_000, "312 GB"),
        (5 * 10**18, "5000 PB"),
    ],
)
def test_format_size_is_si(n: int | None, text: str) -> None:
    assert format_size(n) == text


def test_cli_and_gui_write_every_size_the_same_way() -> None:
    from app.cli.output import human_size as cli_size
    from app.ui.text import human_size as gui_size

    for n in (0, 1, 512, 1023, 1024, 11_441, 1_048_576, 28_600_000, 28_573_696, 10**12):
        assert cli_size(n) == gui_size(n) == format_size(n), n


def test_plural_and_counts() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(0, "file") == "0 files"
    assert plural(12_000, "entry", "entries") == "12,000 entries"
    assert format_count(600_000) == "600,000"
    assert format_count(None) == "—"


def test_rates_and_durations() -> None:
    assert format_rate(700_000) == "700 KB/s"
    assert format_rate(0) == "—"
    assert format_duration(None) == "—"
    assert format_duration(45) == "45s"
    assert format_duration(185) == "3m 05s"
    assert format_duration(7_800) == "2h 10m"


def test_method_labels_are_shared() -> None:
    assert method_label("exact-match") == "Exact match"
    assert method_label("influence") == "Influence"
    assert method_label("new_method") == "New method"


def test_root_problems_have_no_location_prefix() -> None:
    assert problem_location(".") == ""
    assert problem_location("") == ""
    assert problem_location(None) == ""
    assert problem_location("images/a.png") == "images/a.png: "
