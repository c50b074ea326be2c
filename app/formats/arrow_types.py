"""Arrow data types as plain values, spelled the way Arrow's own libraries print them.

The Parquet footer reader and the Arrow IPC reader both produce these; the detectors only
need a schema's field names and type spellings (`str(field.type)`), never column values.
"""

from __future__ import annotations

from dataclasses import dataclass


class ArrowFormatError(ValueError):
    """A Parquet footer or Arrow IPC stream that cannot be read: truncated, corrupt, too big."""


@dataclass(frozen=True, slots=True)
class DataType:
    """One Arrow type: an id ("int64", "list", "timestamp" ...), parameters and child fields.

    `params` by id: timestamp (unit, tz or None); time32/time64/duration (unit,);
    decimal32..256 (precision, scale); fixed_size_binary (width,); fixed_size_list (size,);
    map (keys_sorted,); dictionary (index type, ordered); sparse_union/dense_union
    (type codes); extension (name, spelling inside extension<...>, storage type).
    """

    id: str
    params: tuple[object, ...] = ()
    children: tuple[Field, ...] = ()

    def __str__(self) -> str:
        return _spell(self)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: DataType
    nullable: bool = True

    def __str__(self) -> str:
        return f"{self.name}: {self.type}" + ("" if self.nullable else " not null")


LIST_IDS = frozenset({"list", "large_list", "list_view", "large_list_view", "fixed_size_list"})
INTEGER_IDS = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
FLOAT_IDS = frozenset({"halffloat", "float", "double"})
DECIMAL_IDS = frozenset({"decimal32", "decimal64", "decimal128", "decimal256"})


def _spell(t: DataType) -> str:
    p = t.params
    if t.id == "timestamp":
        return f"timestamp[{p[0]}]" if p[1] is None else f"timestamp[{p[0]}, tz={p[1]}]"
    if t.id in ("time32", "time64", "duration"):
        return f"{t.id}[{p[0]}]"
    if t.id in DECIMAL_IDS:
        return f"{t.id}({p[0]}, {p[1]})"
    if t.id == "fixed_size_binary":
        return f"fixed_size_binary[{p[0]}]"
    if t.id == "fixed_size_list":
        return f"fixed_size_list<{t.children[0]}>[{p[0]}]"
    if t.id in LIST_IDS:
        return f"{t.id}<{t.children[0]}>"
    if t.id == "struct":
        return "struct<" + ", ".join(str(c) for c in t.children) + ">"
    if t.id == "map":
        return _spell_map(t)
    if t.id == "dictionary":
        return f"dictionary<values={t.children[0].type}, indices={p[0]}, ordered={int(bool(p[1]))}>"
    if t.id in ("sparse_union", "dense_union"):
        members = ", ".join(f"{c}={code}" for c, code in zip(t.children, p, strict=False))
        return f"{t.id}<{members}>"
    if t.id == "run_end_encoded":
        return f"run_end_encoded<run_ends: {t.children[0].type}, values: {t.children[1].type}>"
    if t.id == "extension":
        return f"extension<{p[1]}>"
    return t.id


def _spell_map(t: DataType) -> str:
    entries = t.children[0]
    key, item = entries.type.children[0], entries.type.children[1]
    out = f"map<{key.type}" + ("" if key.name == "key" else f" ('{key.name}')")
    out += f", {item.type}" + ("" if item.name == "value" else f" ('{item.name}')")
    if t.params and t.params[0]:
        out += ", keys_sorted"
    if entries.name != "entries":
        out += f" ('{entries.name}')"
    return out + ">"


def simple_name(t: DataType) -> str:
    """The shared type vocabulary (app.formats.schema): bool, int, float, string, else Arrow's."""
    if t.id == "bool":
        return "bool"
    if t.id in INTEGER_IDS:
        return "int"
    if t.id in FLOAT_IDS or t.id in DECIMAL_IDS:
        return "float"
    if t.id in ("string", "large_string"):
        return "string"
    return str(t)
