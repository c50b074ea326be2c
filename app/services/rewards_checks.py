"""Checks of the registry's rewards and usage answers before anything of them is written: the
page or window asked for, ids that are ids, amounts that stay summable in SQLite."""

from __future__ import annotations

import re
from datetime import date, timedelta

from app.domain.errors import RegistryUnavailable
from app.registry_client.http import UNREADABLE
from app.registry_client.usage import REWARDS_PAGE, RewardsPage, UsageWindow

CLOCK_SKEW_DAYS = 1  # the registry's "today" may be a day ahead of ours
MAX_STORED_INT = 2**63 - 1  # SQLite's INTEGER
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_METHOD = re.compile(r"[a-z][a-z0-9-]{0,15}")
_CURSOR = re.compile(r"[0-9]{1,18}")  # a ledger id
_CONTRIBUTION_ID = re.compile(r"[A-Za-z0-9._-]{1,40}")


def check_page(page: RewardsPage, after: str | None) -> None:
    """Refuse a ledger page that is not the one asked for, before anything is written: at most
    a page of entries, each after `after` in ledger order, once, with ids that can be stored,
    and the cursor that follows them (unchanged when there is nothing new): a cursor that
    jumps ahead would skip entries for good."""

    def bad(why: str) -> RegistryUnavailable:
        return RegistryUnavailable(UNREADABLE, hint=f"rewards after {after or 'the start'}: {why}")

    if len(page.items) > REWARDS_PAGE:
        raise bad("more entries than asked for")
    last = int(after) if after is not None and _CURSOR.fullmatch(after) else -1
    ids: set[tuple[str, str, str]] = set()  # (contribution, model, method) found to be ids
    for e in page.items:
        if not _CURSOR.fullmatch(e.cursor) or (n := int(e.cursor)) <= last:
            raise bad(f"entry {e.cursor[:20]!r} is not after the one before it")
        last = n
        if not 0 < len(e.event_id) <= 128:
            raise bad(f"entry {e.cursor} names an id that is not one")
        if (e.contribution_id, e.model_id, e.method) in ids:
            continue
        if not (
            _CONTRIBUTION_ID.fullmatch(e.contribution_id)
            and _MODEL_ID.fullmatch(e.model_id)
            and _METHOD.fullmatch(e.method)
        ):
            raise bad(f"entry {e.cursor} names an id that is not one")
        ids.add((e.contribution_id, e.model_id, e.method))
    # No next cursor only keeps the one asked with (the entries come again, stored once).
    expected = page.items[-1].cursor if page.items else after
    if page.next_cursor not in (expected, None):
        raise bad("the next cursor is not the last entry's")


def check_window(window: UsageWindow, contribution_id: str, since: date, today: date) -> None:
    """Refuse a usage answer that is not the one asked for, before anything is written: the
    contribution and first day asked, a last day not before it nor past the registry's today,
    points inside that range, once each, with ids and amounts that can be stored."""

    def bad(why: str) -> RegistryUnavailable:
        return RegistryUnavailable(UNREADABLE, hint=f"usage of {contribution_id}: {why}")

    if window.contribution_id != contribution_id:
        raise bad("the answer is for another contribution")
    if window.since != since:
        raise bad(f"the answer starts on {window.since}, not on {since} as asked")
    if not since <= window.until <= today + timedelta(days=CLOCK_SKEW_DAYS):
        raise bad(f"the answer ends on {window.until}, outside {since} .. {today}")
    seen: set[tuple[date, str, str]] = set()
    ids: set[tuple[str, str]] = set()  # (model, method) pairs already found to be ids
    totals = [0, 0, 0]
    for p in window.points:
        if not window.since <= p.start <= window.until:
            raise bad(f"a point on {p.start} is outside the range asked")
        if (p.model_id, p.method) not in ids:
            if not _MODEL_ID.fullmatch(p.model_id) or not _METHOD.fullmatch(p.method):
                raise bad("a point names a model or method that is not an id")
            ids.add((p.model_id, p.method))
        if (p.start, p.model_id, p.method) in seen:
            raise bad(f"two points for {p.start}, {p.model_id}, {p.method}")
        seen.add((p.start, p.model_id, p.method))
        for n, value in enumerate((p.events, p.share_ppm, p.reward_micro)):
            totals[n] += value
            if value < 0 or totals[n] > MAX_STORED_INT:
                raise bad("an amount is out of range")


def check_ledger_total(stored: int, page: RewardsPage) -> None:
    """Refuse a page (before it is written) whose amounts would take the ledger copy's total
    past what SQLite sums: every total, per contribution, model or method, stays below it."""
    if stored + sum(e.amount_micro for e in page.items) > MAX_STORED_INT:
        raise RegistryUnavailable(
            UNREADABLE,
            hint=f"its rewards would add up to more than {MAX_STORED_INT:,} micro-units; "
            "nothing of that page was stored",
        )
