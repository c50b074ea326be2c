"""Money as integer micro-units (1 unit = 1_000_000 micro). Never floats."""

from __future__ import annotations

MICRO = 1_000_000


def format_micro(amount: int, *, unit: str = "") -> str:
    """Render micro-units as a decimal string with six places, e.g. 1234567 → '1.234567'."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), MICRO)
    text = f"{sign}{whole:,}.{frac:06d}"
    return f"{text} {unit}".rstrip()


def format_amount(amount: int, *, unit: str = "") -> str:
    """Micro-units for reading at a glance: two decimals from one unit up ('4.62'), two
    significant digits below ('0.0042', '0.000007'); rounded half up, never through a float.
    Show `format_micro` where the exact amount matters (tooltips, the CLI)."""
    sign = "-" if amount < 0 else ""
    size = abs(amount)
    places = 2
    if 0 < size < MICRO:
        places = min(6, max(2, 8 - len(str(size))))  # len: digits of the micro amount
    step = 10 ** (6 - places)
    rounded = (size + step // 2) // step  # in units of 10**-places
    whole, frac = divmod(rounded, 10**places)
    text = f"{sign}{whole:,}.{frac:0{places}d}"
    return f"{text} {unit}".rstrip()
