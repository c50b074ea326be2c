"""Amounts for reading: rounded half up on integers, two decimals or two significant digits."""

from __future__ import annotations

import pytest

from app.domain.money import format_amount, format_micro


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0.00"),
        (7, "0.000007"),
        (42, "0.000042"),
        (4_231, "0.0042"),
        (4_250, "0.0043"),  # half up
        (500_000, "0.50"),
        (999_999, "1.00"),
        (4_620_453, "4.62"),
        (3_676_820, "3.68"),
        (1_234_567_890_123, "1,234,567.89"),
        (-4_231, "-0.0042"),
        (10**30, "1,000,000,000,000,000,000,000,000.00"),  # any integer, no float
    ],
)
def test_format_amount(micro: int, text: str) -> None:
    assert format_amount(micro) == text
    assert format_amount(micro, unit="credits") == f"{text} credits"


def test_format_micro_stays_exact() -> None:
    assert format_micro(4_620_453, unit="credits") == "4.620453 credits"
