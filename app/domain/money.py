"""Money as integer micro-units (1 unit = 1_000_000 micro). Never floats."""

from __future__ import annotations

MICRO = 1_000_000


def format_micro(amount: int, *, unit: str = "") -> str:
    """Render micro-units as a decimal string with six places, e.g. 1234567 → '1.234567'."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), MICRO)
    text = f"{sign}{whole:,}.{frac:06d}"
    return f"{text} {unit}".rstrip()
