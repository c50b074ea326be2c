"""The window's page registry: pages by key, eager ones built at once, lazy ones on first visit."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget

from app.ui.pages.registry import Page, PageRegistry


def test_lazy_page_is_built_once_on_first_visit_and_shown_by_key(qtbot: Any) -> None:
    stack = QStackedWidget()
    qtbot.addWidget(stack)
    registry = PageRegistry(stack)
    built: list[str] = []
    shown: list[str] = []

    def build(text: str) -> QWidget:
        built.append(text)
        return QLabel(text)

    registry.register(Page("one", "One", "one", "Ctrl+1", lambda: build("one")))
    registry.register(
        Page(
            "two",
            "Two",
            "two",
            "Ctrl+2",
            lambda: build("two"),
            lazy=True,
            on_show=lambda: shown.append("two"),
        )
    )
    registry.register(Page("three", "Three", "three", "Ctrl+3", lambda: build("three")))
    assert built == ["one", "three"]  # the lazy page is not built with the window
    assert [p.key for p in registry] == ["one", "two", "three"] and len(registry) == 3
    assert registry.widget("two") is None and stack.count() == 3  # a placeholder holds its place
    assert "two" in registry and "four" not in registry

    page = registry.show("two")
    assert built == ["one", "three", "two"] and shown == ["two"]
    assert isinstance(page, QLabel) and page.text() == "two"
    assert stack.currentWidget() is page and stack.indexOf(page) == registry.index("two") == 1
    assert stack.count() == 3  # the placeholder made way

    registry.show("three")
    assert stack.currentIndex() == 2 and registry.key_at(2) == "three"
    assert registry.show("two") is page  # built once; on_show runs on every visit
    assert built == ["one", "three", "two"] and shown == ["two", "two"]


def test_a_key_is_registered_once(qtbot: Any) -> None:
    stack = QStackedWidget()
    qtbot.addWidget(stack)
    registry = PageRegistry(stack)
    registry.register(Page("one", "One", "one", "Ctrl+1", QWidget))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Page("one", "Again", "one", "Ctrl+2", QWidget))
    with pytest.raises(KeyError):
        registry.show("missing")
