"""How sizes, counts, rates and a few words are written, for the CLI and the GUI alike.

One formatter and one unit system (SI: 1 kB = 1000 bytes, as file managers show them) so a
file is "28.6 MB" on both sides; the bandwidth setting in KB/s uses the same kilobyte.
"""

from __future__ import annotations

KB = 1000
_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")

METHOD_LABELS = {
    "influence": "Influence",
    "exact-match": "Exact match",
    "retrieval": "Retrieval",
}


def format_size(n: int | float | None) -> str:
    """Bytes as '512 B', '11.4 KB', '28.6 MB', '312 GB' (three significant digits)."""
    if n is None:
        return "—"
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in _UNITS:
        if unit == "B" and value < KB:
            return f"{sign}{int(value)} B"
        if value < 999.95 or unit == _UNITS[-1]:
            if unit == "B":
                break
            return f"{sign}{value:.1f} {unit}" if value < 99.95 else f"{sign}{value:.0f} {unit}"
        value /= KB
    return f"{sign}{value:.1f} {_UNITS[-1]}"  # pragma: no cover - the loop returns


def format_rate(bytes_per_s: float | None) -> str:
    """An upload or download rate: '700 KB/s'."""
    if not bytes_per_s:
        return "—"
    return f"{format_size(bytes_per_s)}/s"


def format_count(n: int | None) -> str:
    """A whole number with thousands separators ('12,500'), or '—' when unknown."""
    return "—" if n is None else f"{n:,}"


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """'1 file', '2 files', '12,000 files'."""
    word = noun if n == 1 else (plural_form or f"{noun}s")
    return f"{n:,} {word}"


def format_duration(seconds: float | None) -> str:
    """A remaining time: '45s', '3m 05s', '2h 10m'; '—' when it cannot be known."""
    if seconds is None or seconds < 0:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def method_label(method: str) -> str:
    """An attribution method as people read it ('exact-match' → 'Exact match')."""
    return METHOD_LABELS.get(method, method.replace("-", " ").replace("_", " ").capitalize())


def problem_location(path: str | None) -> str:
    """The 'where: ' prefix of a problem line; nothing for the contribution's root ('.')."""
    if not path or path.strip() in (".", "./"):
        return ""
    return f"{path}: "
