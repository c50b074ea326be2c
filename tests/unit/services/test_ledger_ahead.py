"""Ledger pages read ahead (app.services.ledger_ahead): in order with their leaves, the next
page read while the leaves of this one are, an error in its page's place after the pages
before it, nothing read after the last page or the limit, and leaving early never hangs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from app.services.ledger_ahead import PagesAhead, is_last


@dataclass(frozen=True)
class _Page:
    number: int
    has_more: bool
    next_cursor: str | None


class _Registry:
    """Pages 1..`pages` (cursor "n" after page n); `fail_at`: reading that page raises."""

    def __init__(self, pages: int, fail_at: int | None = None) -> None:
        self.pages = pages
        self.fail_at = fail_at
        self.read: list[str | None] = []
        self.leaves_read: list[int] = []
        self.lock = threading.Lock()

    def page(self, cursor: str | None) -> _Page:
        with self.lock:
            self.read.append(cursor)
        n = 1 if cursor is None else int(cursor) + 1
        if n == self.fail_at:
            raise ConnectionError(f"page {n}")
        return _Page(n, n < self.pages, str(n))

    def leaves(self, page: _Page) -> str:
        with self.lock:
            self.leaves_read.append(page.number)
        return f"leaves of {page.number}"


def test_pages_come_in_order_with_their_leaves_and_stop_after_the_last() -> None:
    registry = _Registry(5)
    with PagesAhead(registry.page, registry.leaves, None, limit=100) as reads:
        taken = [reads.take() for _ in range(5)]
        with pytest.raises(RuntimeError):
            reads.take()  # nothing after the last page
    assert [(p.number, leaves) for p, leaves in taken] == [
        (n, f"leaves of {n}") for n in range(1, 6)
    ]
    assert registry.read == [None, "1", "2", "3", "4"]  # each page once, none after the last
    assert registry.leaves_read == [1, 2, 3, 4, 5]


def test_the_next_page_is_read_while_the_leaves_of_this_one_are() -> None:
    """The leaves of page 1 are held until page 2 has been read: read one after the other
    (page, its leaves, the next page) this would never finish."""
    page_two = threading.Event()

    def page(cursor: str | None) -> _Page:
        n = 1 if cursor is None else int(cursor) + 1
        if n == 2:
            page_two.set()
        return _Page(n, n < 3, str(n))

    def leaves(p: _Page) -> int:
        if p.number == 1:
            assert page_two.wait(10), "page 2 was not read while page 1's leaves were"
        return p.number

    with PagesAhead(page, leaves, None, limit=10) as reads:
        assert [reads.take()[1] for _ in range(3)] == [1, 2, 3]


def test_an_error_comes_in_its_page_s_place_and_nothing_is_read_after_it() -> None:
    registry = _Registry(10, fail_at=3)
    with PagesAhead(registry.page, registry.leaves, None, limit=100) as reads:
        assert [reads.take()[0].number for _ in range(2)] == [1, 2]
        with pytest.raises(ConnectionError, match="page 3"):
            reads.take()
    assert registry.read == [None, "1", "2"]


def test_an_error_reading_leaves_comes_with_its_page() -> None:
    def leaves(p: _Page) -> str:
        if p.number == 2:
            raise ValueError("leaves of 2")
        return "ok"

    with PagesAhead(_Registry(4).page, leaves, None, limit=100) as reads:
        assert reads.take()[1] == "ok"
        with pytest.raises(ValueError, match="leaves of 2"):
            reads.take()


def test_at_most_limit_pages_are_read() -> None:
    registry = _Registry(100)
    with PagesAhead(registry.page, registry.leaves, "10", limit=3) as reads:
        assert [reads.take()[0].number for _ in range(3)] == [11, 12, 13]
        with pytest.raises(RuntimeError):
            reads.take()
    assert registry.read == ["10", "11", "12"]


def test_leaving_early_stops_the_reads_without_hanging() -> None:
    """The sync refuses a page with more pages ahead: the reader waiting for room stops, at
    most `depth` pages past the last one taken (and the one under way) were read."""
    registry = _Registry(1000)
    started = time.monotonic()
    with PagesAhead(registry.page, registry.leaves, None, limit=1000, depth=2) as reads:
        reads.take()
        time.sleep(0.2)  # the reader fills its room and waits
    assert time.monotonic() - started < 5
    assert len(registry.read) <= 1 + 2 + 1


def test_a_page_that_names_itself_next_is_the_last() -> None:
    assert is_last(_Page(1, True, "7"), "7")
    assert is_last(_Page(1, True, None), "6")
    assert is_last(_Page(1, False, "8"), "7")
    assert not is_last(_Page(1, True, "8"), "7")
