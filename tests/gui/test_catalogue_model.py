"""The catalogue model: Qt model rules (qtmodeltester), lazy paging, grouping, sorting."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, Qt

from app.domain.states import Kind, State
from app.ui.adapters.catalogue_model import COL_SIZE, COL_TITLE, CatalogueModel, IsChildRole
from tests.gui.conftest import add_item, make_csv


@dataclass(frozen=True)
class Row:
    id: int
    kind: Kind
    title: str
    format: str = "csv"
    record_count: int | None = 10
    file_count: int = 1
    total_size: int = 1000
    state: State = State.DRAFT
    license: str = ""
    parent_id: int | None = None
    parent_registry_id: str | None = None
    manifest_root: str = "ab" * 32
    created_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    updated_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


class FakeSource:
    """An in-memory CatalogueSource that records every query (to prove paging)."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.calls: list[dict[str, Any]] = []

    def count(self, *, search: str = "", kind: Kind | None = None) -> int:
        return len(self._match(search))

    def _match(self, search: str) -> list[Row]:
        return [r for r in self.rows if search.lower() in r.title.lower()]

    def list_items(self, **kw: Any) -> list[Row]:
        self.calls.append(kw)
        rows = sorted(self._match(kw.get("search", "")), key=lambda r: getattr(r, kw["order_by"]))
        if kw.get("descending"):
            rows.reverse()
        offset, limit = kw["offset"], kw["limit"]
        return rows[offset : offset + limit]


def test_qtmodeltester_on_real_catalogue(qtmodeltester: Any, services: Any, tmp_path: Path) -> None:
    parent = add_item(services, make_csv(tmp_path / "base", rows=3), title="Base set")
    add_item(
        services,
        make_csv(tmp_path / "labels", "labels.csv", rows=2),
        title="Labels",
        kind=Kind.ANNOTATION,
        parent_id=parent.id,
    )
    add_item(services, make_csv(tmp_path / "other", "o.csv"), title="Other")
    model = CatalogueModel(services.catalogue, page_size=2)
    model.refresh()
    qtmodeltester.check(model, force_py=True)
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
    qtmodeltester.check(model, force_py=True)
    titles = [model.index(r, COL_TITLE).data() for r in range(model.rowCount())]
    assert titles == ["Base set", "Labels", "Other"]
    assert model.index(1, COL_TITLE).data(IsChildRole) == 1


def test_lazy_paging_at_100k_rows_queries_pages_not_rows() -> None:
    rows = [Row(i, Kind.DATASET, f"Dataset {i:06d}") for i in range(1, 100_001)]
    source = FakeSource(rows)
    model = CatalogueModel(source, page_size=200)
    model.refresh()
    assert model.total == 100_000
    assert model.rowCount() == 200
    assert len(source.calls) == 1
    for r in range(model.rowCount()):  # painting every loaded row must not query
        model.index(r, COL_TITLE).data()
        model.index(r, COL_SIZE).data(Qt.ItemDataRole.ToolTipRole)
    assert len(source.calls) == 1
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 400 and len(source.calls) == 2
    assert source.calls[1]["offset"] == 200


def test_annotations_are_grouped_under_their_dataset_across_pages() -> None:
    rows = [
        Row(1, Kind.DATASET, "b dataset"),
        Row(2, Kind.DATASET, "a dataset"),
        Row(3, Kind.ANNOTATION, "c labels of 1", parent_id=1),
        Row(4, Kind.ANNOTATION, "d labels of 2", parent_id=2),
        Row(5, Kind.ANNOTATION, "e orphan", parent_id=99),
    ]
    source = FakeSource(rows)
    model = CatalogueModel(source, page_size=2)
    model.sort(COL_TITLE, Qt.SortOrder.AscendingOrder)
    assert source.calls == []  # sorting before the first load queries nothing
    model.refresh()
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
    titles = [model.index(r, COL_TITLE).data() for r in range(model.rowCount())]
    assert titles == ["a dataset", "d labels of 2", "b dataset", "c labels of 1", "e orphan"]
    children = [model.index(r, COL_TITLE).data(IsChildRole) for r in range(5)]
    assert children == [0, 1, 0, 1, 0]


def test_sort_and_search_go_to_the_service() -> None:
    rows = [Row(i, Kind.DATASET, f"T{i}", total_size=i * 10) for i in range(1, 6)]
    source = FakeSource(rows)
    model = CatalogueModel(source, page_size=10)
    model.refresh()
    model.sort(COL_SIZE, Qt.SortOrder.DescendingOrder)
    assert source.calls[-1]["order_by"] == "total_size" and source.calls[-1]["descending"]
    assert model.index(0, COL_TITLE).data() == "T5"
    model.set_search("t3")
    assert source.calls[-1]["search"] == "t3"
    assert model.total == 1 and model.index(0, COL_TITLE).data() == "T3"


def test_catalogue_that_shrinks_while_paging_stops_fetching() -> None:
    rows = [Row(i, Kind.DATASET, f"T{i}") for i in range(1, 11)]
    source = FakeSource(rows)
    model = CatalogueModel(source, page_size=4)
    model.refresh()
    source.rows = rows[:4]  # items removed by another process
    model.fetchMore(QModelIndex())
    assert not model.canFetchMore(QModelIndex())
    assert model.rowCount() == 4
    assert replace(rows[0]) == rows[0]
