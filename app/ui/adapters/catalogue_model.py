"""The catalogue as a lazily fetched table model.

Why lazy: a contributor may hold 100,000 items; the model fetches pages from
CatalogueService.list_items as the view scrolls (canFetchMore/fetchMore) and never queries per
row on paint. Sorting and searching are done by the service (ORDER BY / WHERE), then the model
resets. Annotation sets are grouped right under their dataset when the dataset is loaded: the
delegate indents them and draws a parent marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from app.domain.states import Kind
from app.domain.units import plural
from app.ui.text import human_count, human_size, local_timestamp, relative_time

if TYPE_CHECKING:
    from app.services.catalogue import ItemSummary

Index = QModelIndex | QPersistentModelIndex

ItemRole = Qt.ItemDataRole.UserRole + 1  # the ItemSummary
IsChildRole = Qt.ItemDataRole.UserRole + 2  # 1 when shown grouped under its parent, else 0
SortKeyRole = Qt.ItemDataRole.UserRole + 3


@dataclass(frozen=True)
class Column:
    key: str  # ItemSummary attribute and list_items order_by value
    title: str
    numeric: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("title", "Title"),
    Column("kind", "Kind"),
    Column("format", "Format"),
    Column("record_count", "Items", numeric=True),
    Column("total_size", "Size", numeric=True),
    Column("state", "State"),
    Column("updated_at", "Last activity"),
)
COL_TITLE, COL_KIND, COL_FORMAT, COL_ITEMS, COL_SIZE, COL_STATE, COL_UPDATED = range(7)

KIND_LABELS = {"dataset": "Dataset", "annotation": "Annotation set"}


class CatalogueSource(Protocol):
    """The part of CatalogueService the model reads (keeps the model testable)."""

    def count(self, *, search: str = "", kind: Kind | None = None) -> int: ...

    def list_items(
        self,
        *,
        search: str = "",
        kind: Kind | None = None,
        offset: int = 0,
        limit: int | None = None,
        order_by: str = "id",
        descending: bool = False,
    ) -> list[ItemSummary]: ...


class CatalogueModel(QAbstractTableModel):
    """Rows are ItemSummary objects; pages arrive through fetchMore."""

    totalChanged = Signal(int)

    def __init__(
        self, source: CatalogueSource, page_size: int = 200, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._source = source
        self.page_size = page_size
        self._search = ""
        self._kind: Kind | None = None
        self._order_by = "id"
        self._descending = False
        self._rows: list[ItemSummary] = []
        self._ids: list[int] = []  # parallel to _rows; C-speed index lookups
        self._child: list[bool] = []
        self._children_of: dict[int, int] = {}
        self._fetched = 0
        self._total = 0
        self._loaded = False  # nothing is queried before the first refresh()

    # -- querying ------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """How many items match the current search (loaded or not)."""
        return self._total

    @property
    def search_text(self) -> str:
        return self._search

    def set_search(self, text: str) -> None:
        text = text.strip()
        if text != self._search:
            self._search = text
            if self._loaded:
                self.refresh()

    def set_kind(self, kind: Kind | None) -> None:
        if kind != self._kind:
            self._kind = kind
            if self._loaded:
                self.refresh()

    def refresh(self) -> None:
        """Re-query from the first page (after sort, search, add or remove)."""
        self._loaded = True
        self.beginResetModel()
        self._rows, self._ids, self._child = [], [], []
        self._children_of = {}
        self._fetched = 0
        self._total = self._source.count(search=self._search, kind=self._kind)
        self.endResetModel()
        if self._total:
            self.fetchMore(QModelIndex())
        self.totalChanged.emit(self._total)

    def item_at(self, row: int) -> ItemSummary | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, item_id: int) -> int:
        try:
            return self._ids.index(item_id)
        except ValueError:
            return -1

    def ensure_loaded(self, item_id: int, max_pages: int = 50) -> int:
        """Fetch pages until item_id is loaded (e.g. to select a just-added item)."""
        row = self.row_of(item_id)
        pages = 0
        while row < 0 and self.canFetchMore(QModelIndex()) and pages < max_pages:
            self.fetchMore(QModelIndex())
            row = self.row_of(item_id)
            pages += 1
        return row

    # -- lazy fetching ------------------------------------------------------------------
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._fetched < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or self._fetched >= self._total:
            return
        page = self._source.list_items(
            search=self._search,
            kind=self._kind,
            offset=self._fetched,
            limit=self.page_size,
            order_by=self._order_by,
            descending=self._descending,
        )
        if not page:  # the catalogue shrank under us: stop asking
            self._total = self._fetched
            return
        self._fetched += len(page)
        loaded = set(self._ids)
        plain: list[ItemSummary] = []
        grouped: list[ItemSummary] = []
        for item in page:
            pid = item.parent_id
            if item.kind == Kind.ANNOTATION and pid is not None and (pid in loaded):
                grouped.append(item)
            else:
                plain.append(item)
                loaded.add(item.id)
        # Children whose parent is in this very page are grouped too.
        page_ids = {p.id for p in plain}
        still_plain: list[ItemSummary] = []
        for item in plain:
            pid = item.parent_id
            in_page = pid is not None and pid in page_ids and pid != item.id
            if item.kind == Kind.ANNOTATION and in_page:
                grouped.append(item)
            else:
                still_plain.append(item)
        if still_plain:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(still_plain) - 1)
            self._rows.extend(still_plain)
            self._ids.extend(p.id for p in still_plain)
            self._child.extend(False for _ in still_plain)
            self.endInsertRows()
        for item in grouped:
            pid = item.parent_id
            assert pid is not None
            try:
                parent_row = self._ids.index(pid)
            except ValueError:  # parent is itself grouped away: append plainly
                parent_row = -1
            if parent_row < 0 or self._child[parent_row]:
                pos, is_child = len(self._rows), False
            else:
                pos = parent_row + 1 + self._children_of.get(pid, 0)
                is_child = True
                self._children_of[pid] = self._children_of.get(pid, 0) + 1
            self.beginInsertRows(QModelIndex(), pos, pos)
            self._rows.insert(pos, item)
            self._ids.insert(pos, item.id)
            self._child.insert(pos, is_child)
            self.endInsertRows()

    # -- Qt model API -------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        col = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.title
        if role == Qt.ItemDataRole.TextAlignmentRole:
            h = Qt.AlignmentFlag.AlignRight if col.numeric else Qt.AlignmentFlag.AlignLeft
            return int(h | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        item = self._rows[index.row()]
        col = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self._display(item, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item, col, self._child[index.row()])
        if role == Qt.ItemDataRole.TextAlignmentRole:
            h = Qt.AlignmentFlag.AlignRight if COLUMNS[col].numeric else Qt.AlignmentFlag.AlignLeft
            return int(h | Qt.AlignmentFlag.AlignVCenter)
        if role == ItemRole:
            return item
        if role == IsChildRole:
            # An int, not a bool: returning Py_True/Py_False through QVariant trips a PySide6
            # refcount bug (interpreter abort at exit: "bool_dealloc").
            return int(self._child[index.row()])
        if role == SortKeyRole:
            return getattr(item, COLUMNS[col].key)
        return None

    def _display(self, item: ItemSummary, col: int) -> str:
        if col == COL_TITLE:
            return item.title
        if col == COL_KIND:
            return KIND_LABELS.get(str(item.kind), str(item.kind))
        if col == COL_FORMAT:
            return item.format
        if col == COL_ITEMS:
            return human_count(item.record_count)
        if col == COL_SIZE:
            return human_size(item.total_size)
        if col == COL_STATE:
            return str(item.state).capitalize().replace("-", " ")  # "Pending review"
        if col == COL_UPDATED:
            return relative_time(item.updated_at)
        return ""

    def _tooltip(self, item: ItemSummary, col: int, is_child: bool) -> str:
        if col == COL_TITLE:
            lines = [item.title, KIND_LABELS.get(str(item.kind), str(item.kind))]
            if item.parent_id is not None:
                where = "shown under it" if is_child else "not loaded in this view"
                lines.append(f"Annotates catalogue item #{item.parent_id} ({where})")
            elif item.parent_registry_id:
                lines.append(f"Annotates registry contribution {item.parent_registry_id}")
            return "\n".join(lines)
        if col == COL_SIZE:
            return f"{item.total_size:,} bytes in {plural(item.file_count, 'file')}"
        if col == COL_UPDATED:
            return local_timestamp(item.updated_at)
        return self._display(item, col)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS):
            return
        self._order_by = COLUMNS[column].key
        self._descending = order == Qt.SortOrder.DescendingOrder
        if self._loaded:  # the view sorts once when sorting is enabled: no query for that
            self.refresh()
