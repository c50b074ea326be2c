"""Small, shared type vocabulary so datanet rules can compare schemas across formats."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.formats.arrow_types import DataType, Field, simple_name

# Order of generality for text cells: a column is the most specific type all its cells fit.
_TEXT_ORDER = ("bool", "int", "float", "string")
_BOOL_WORDS = frozenset({"true", "false"})


def text_cell_type(cell: str) -> str | None:
    """Type of one CSV cell; None for an empty cell, which fits any type (missing value)."""
    value = cell.strip()
    if not value:
        return None
    if value.lower() in _BOOL_WORDS:
        return "bool"
    try:
        int(value)
    except ValueError:
        pass
    else:
        return "int"
    try:
        float(value)
    except ValueError:
        return "string"
    return "float"


def widen(current: str | None, new: str | None) -> str | None:
    """Most specific type covering both; bool only mixes with bool, int widens to float."""
    if new is None or current == new:
        return current if new is None else new
    if current is None:
        return new
    if {current, new} == {"int", "float"}:
        return "float"
    if current in _TEXT_ORDER and new in _TEXT_ORDER:
        return "string"
    return "mixed"


def json_value_type(value: Any) -> str | None:
    """Type name of a decoded JSON value, in the same vocabulary as text cells."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class RecordSchema:
    """Accumulates key → type over the first records of a JSON/JSONL stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.types: dict[str, str | None] = {}

    def add(self, record: Any) -> None:
        if self.seen >= self.limit or not isinstance(record, dict):
            return
        self.seen += 1
        for key, value in record.items():
            self.types[str(key)] = widen(self.types.get(str(key)), json_value_type(value))

    def result(self) -> dict[str, str]:
        return {k: v or "string" for k, v in self.types.items()}


def arrow_type_name(arrow_type: DataType) -> str:
    """Map an Arrow type onto the shared vocabulary; other types keep Arrow's spelling."""
    return simple_name(arrow_type)


def arrow_schema(fields: Iterable[Field]) -> tuple[dict[str, str], dict[str, str]]:
    """(simple schema, exact Arrow type spellings) for a list of Arrow fields."""
    fields = list(fields)
    simple = {f.name: arrow_type_name(f.type) for f in fields}
    exact = {f.name: str(f.type) for f in fields}
    return simple, exact
