"""The window's pages, each registered once with its key, title, icon, shortcut and factory.

Navigation goes by key, never by position. A lazy page (one whose module is costly to import,
such as the Rewards charts) stands behind an empty placeholder until its first visit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PySide6.QtWidgets import QStackedWidget, QWidget


@dataclass(frozen=True)
class Page:
    key: str  # also the name of its sidebar icon and what ui-state.ini remembers
    title: str
    icon: str
    shortcut: str
    factory: Callable[[], QWidget]
    lazy: bool = False  # built on first visit instead of with the window
    on_show: Callable[[], None] | None = None  # each time the page is shown


class PageRegistry:
    """The pages in sidebar order, and the stacked widget that shows them."""

    def __init__(self, stack: QStackedWidget) -> None:
        self.stack = stack
        self._pages: list[Page] = []
        self._built: dict[str, QWidget] = {}
        self._placeholders: dict[str, QWidget] = {}

    def register(self, page: Page) -> None:
        if page.key in self:
            raise ValueError(f"page {page.key!r} is registered twice")
        self._pages.append(page)
        if page.lazy:
            placeholder = QWidget()
            self._placeholders[page.key] = placeholder
            self.stack.addWidget(placeholder)
        else:
            widget = page.factory()
            self._built[page.key] = widget
            self.stack.addWidget(widget)

    def __iter__(self) -> Iterator[Page]:
        return iter(self._pages)

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, key: object) -> bool:
        return any(p.key == key for p in self._pages)

    def page(self, key: str) -> Page:
        return self._pages[self.index(key)]

    def index(self, key: str) -> int:
        for i, page in enumerate(self._pages):
            if page.key == key:
                return i
        raise KeyError(key)

    def key_at(self, index: int) -> str:
        return self._pages[index].key

    def widget(self, key: str) -> QWidget | None:
        """The page's widget, or None while a lazy page has not been visited."""
        return self._built.get(key)

    def show(self, key: str) -> QWidget:
        """Build the page if it is lazy and not built yet, run its on_show, then show it."""
        index = self.index(key)
        page = self._pages[index]
        widget = self._built.get(key)
        if widget is None:
            widget = page.factory()
            self._built[key] = widget
            placeholder = self._placeholders.pop(key)
            self.stack.insertWidget(index, widget)
            self.stack.removeWidget(placeholder)
            placeholder.deleteLater()
        if page.on_show is not None:
            page.on_show()
        self.stack.setCurrentIndex(index)
        return widget
