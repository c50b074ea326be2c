"""Human-friendly rendering of sizes, counts and times for the views (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain.units import format_count, format_size


def human_size(n: int | None) -> str:
    return format_size(n)


def human_count(n: int | None) -> str:
    return format_count(n)


def as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def relative_time(dt: datetime | None, now: datetime | None = None) -> str:
    """'just now', '5 min ago', 'yesterday', or a date: what a user scans a list for."""
    if dt is None:
        return "—"
    now = now or datetime.now(UTC)
    seconds = (now - as_utc(dt)).total_seconds()
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        hours = round(seconds / 3600)
        return f"{hours} h ago"
    if seconds < 2 * 86400:
        return "yesterday"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} days ago"
    return as_utc(dt).astimezone().strftime("%d %b %Y")


def local_time(dt: datetime | None) -> datetime | None:
    """A stored UTC time (naive from SQLite) in the computer's time zone."""
    return None if dt is None else as_utc(dt).astimezone()


def local_timestamp(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    return as_utc(dt).astimezone().strftime("%Y-%m-%d %H:%M")


def short_hash(value: str | None, n: int = 16) -> str:
    if not value:
        return "—"
    return value if len(value) <= n else f"{value[:n]}…"


def grouped_fingerprint(fp: str) -> str:
    return " ".join(fp[i : i + 4] for i in range(0, len(fp), 4)).upper()
