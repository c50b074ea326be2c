"""Ledger pages read ahead of a rewards sync's checks (app.services.rewards).

A page names the cursor of the next, so pages are read one after the other; but the next page
need not wait for this one's log leaves, nor for the sync to check it. `PagesAhead` reads each
page as soon as the one before it is in (at most `depth` pages waiting to be taken), and the
log leaves of each page on a second worker as soon as that page is in: the registry answers
the next page and this page's leaves while the sync checks the page before.

The pages come out in order, each with its leaves; an error reading a page comes out in its
place, after every page before it, and nothing is read after it. Leaving the `with` block
(also on an error) stops the reading: reads under way are waited for, the rest dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, Protocol, TypeVar, cast


class Page(Protocol):
    @property
    def has_more(self) -> bool: ...

    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=Page)
L = TypeVar("L")

_DONE = object()  # the reader has read its last page


def is_last(page: Page, cursor: str | None) -> bool:
    """Whether `page`, read after `cursor`, is the last one to read."""
    return not page.has_more or page.next_cursor in (None, cursor)


class PagesAhead(Generic[P, L]):
    """`read_page(cursor)` from `cursor` on, at most `limit` pages, and `read_leaves(page)` of
    each (see the module doc); `take` gives them in order."""

    def __init__(
        self,
        read_page: Callable[[str | None], P],
        read_leaves: Callable[[P], L],
        cursor: str | None,
        *,
        limit: int,
        depth: int = 2,
    ) -> None:
        self._read_page = read_page
        self._read_leaves = read_leaves
        self._cursor = cursor
        self._limit = limit
        self._ready: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._leaves = ThreadPoolExecutor(1, thread_name_prefix="sync-read-leaves")
        self._reader = threading.Thread(target=self._run, name="sync-read-pages", daemon=True)

    def __enter__(self) -> PagesAhead[P, L]:
        self._reader.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        while self._reader.is_alive():
            self._drain()  # a reader waiting for room gets it, sees the stop and ends
            self._reader.join(0.05)
        self._drain()
        self._leaves.shutdown(wait=True, cancel_futures=True)

    def take(self) -> tuple[P, L]:
        """The next page and its leaves (waiting for them); the error reading it instead."""
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item
        if item is _DONE:
            raise RuntimeError("no page after the last one")
        page, leaves = cast(tuple[P, Future[L]], item)
        return page, leaves.result()

    def _run(self) -> None:
        cursor = self._cursor
        try:
            for _n in range(self._limit):
                if self._stop.is_set():
                    return
                page = self._read_page(cursor)
                leaves: Future[L] = self._leaves.submit(self._read_leaves, page)
                if not self._put((page, leaves)) or is_last(page, cursor):
                    break
                cursor = page.next_cursor
            self._put(_DONE)
        except BaseException as exc:  # handed to the sync, in the place of the page
            self._put(exc)

    def _put(self, item: object) -> bool:
        """Hand `item` over, waiting for room (False: the sync stopped taking pages)."""
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _drain(self) -> None:
        while True:
            try:
                self._ready.get_nowait()
            except queue.Empty:
                return
