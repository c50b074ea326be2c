"""Parquet footer: row count, row groups and the Arrow schema, read without any column data.

A Parquet file ends with the FileMetaData (Thrift compact protocol), its length as a
little-endian uint32, and the magic "PAR1"; it also starts with "PAR1". The schema is a
depth-first list of SchemaElements; it is turned into Arrow types as Arrow's own Parquet reader
does, and refined by the Arrow schema that Arrow writers store in the key-value metadata
("ARROW:schema", a base64 IPC Schema message): dictionary, large and view types, durations,
time zones and fixed-size lists come back from there.

Every length is checked against the bytes that are really there, the footer is capped at
MAX_FOOTER bytes and nesting at MAX_DEPTH levels: a corrupt file raises ArrowFormatError.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from app.formats.arrow_ipc import schema_from_message
from app.formats.arrow_types import LIST_IDS, ArrowFormatError, DataType, Field

MAGIC = b"PAR1"
MAX_FOOTER = 64 * 1024 * 1024
MAX_DEPTH = 64

# Thrift compact protocol type codes
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = 0, 1, 2, 3, 4, 5, 6, 7, 8
_LIST, _SET, _MAP, _STRUCT = 9, 10, 11, 12

_PHYSICAL = ("BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY", "FLBA")
_REQUIRED, _OPTIONAL, _REPEATED = 0, 1, 2


@dataclass(slots=True)
class ParquetMeta:
    num_rows: int
    row_groups: int
    fields: list[Field]
    key_value: dict[str, str] = field(default_factory=dict)
    created_by: str | None = None


class _Compact:
    """A Thrift compact protocol reader over one footer, bounds-checked throughout."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _byte(self) -> int:
        if self.pos >= len(self.buf):
            raise ArrowFormatError("the footer ends in the middle of a value")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self._byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 63:
                raise ArrowFormatError("a footer integer is longer than 64 bits")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        size = self.varint()
        if size > len(self.buf) - self.pos:
            raise ArrowFormatError(f"a footer string claims {size} bytes past the footer's end")
        out = self.buf[self.pos : self.pos + size]
        self.pos += size
        return out

    def text(self) -> str:
        return self.binary().decode("utf-8", errors="replace")

    def list_header(self) -> tuple[int, int]:
        b = self._byte()
        size, kind = b >> 4, b & 0x0F
        if size == 15:
            size = self.varint()
        # every element takes at least one byte: a count past the footer's end is a lie
        if size > len(self.buf) - self.pos:
            raise ArrowFormatError(f"a footer list claims {size} elements")
        return size, kind

    @staticmethod
    def _check_depth(depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ArrowFormatError(f"the footer nests more than {MAX_DEPTH} levels deep")

    def fields(self, depth: int) -> Any:
        """Yield (field id, type) of a struct until its STOP; the caller reads or skips."""
        self._check_depth(depth)
        last = 0
        while True:
            b = self._byte()
            kind = b & 0x0F
            if kind == _STOP:
                return
            delta = b >> 4
            last = last + delta if delta else self.zigzag()
            yield last, kind

    def value(self, kind: int, depth: int) -> Any:
        """Read one value generically: ints, bytes, lists, and structs as {id: value}."""
        self._check_depth(depth)
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            return self._byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            if self.pos + 8 > len(self.buf):
                raise ArrowFormatError("the footer ends in the middle of a value")
            self.pos += 8
            return 0.0
        if kind == _BINARY:
            return self.binary()
        if kind in (_LIST, _SET):
            size, elem = self.list_header()
            if elem in (_TRUE, _FALSE):  # list elements: one byte each
                return [self._byte() == _TRUE for _ in range(size)]
            return [self.value(elem, depth + 1) for _ in range(size)]
        if kind == _MAP:
            size = self.varint()
            if size > len(self.buf) - self.pos:
                raise ArrowFormatError(f"a footer map claims {size} entries")
            if size == 0:
                return {}
            types = self._byte()
            return {
                self._hashable(self.value(types >> 4, depth + 1)): self.value(
                    types & 0x0F, depth + 1
                )
                for _ in range(size)
            }
        if kind == _STRUCT:
            return {fid: self.value(k, depth + 1) for fid, k in self.fields(depth + 1)}
        raise ArrowFormatError(f"unknown Thrift type {kind} in the footer")

    @staticmethod
    def _hashable(v: Any) -> Any:
        return v if isinstance(v, int | bytes | bool | float) else repr(v)

    def skip(self, kind: int, depth: int) -> None:
        """Skip one value without building it (row groups can be most of a footer)."""
        try:
            pos = _skip(self.buf, self.pos, kind, depth)
        except IndexError:
            pos = len(self.buf) + 1
        if pos > len(self.buf):
            raise ArrowFormatError("the footer ends in the middle of a value")
        self.pos = pos


_VARINTS = frozenset({_I16, _I32, _I64})


def _skip(buf: bytes, pos: int, kind: int, depth: int) -> int:
    """Position after one compact-protocol value at `pos`, nothing built: a tight loop.

    Footers of wide files with many row groups are megabytes of column-chunk metadata that
    only has to be stepped over to reach the key-value metadata behind it. Reading past the
    end raises IndexError (or returns a position past it): the caller turns both into errors.
    """
    if depth > MAX_DEPTH:
        raise ArrowFormatError(f"the footer nests more than {MAX_DEPTH} levels deep")
    if kind in _VARINTS:
        while buf[pos] & 0x80:
            pos += 1
        return pos + 1
    if kind == _STRUCT:
        while True:
            b = buf[pos]
            pos += 1
            t = b & 0x0F
            if t == _STOP:
                return pos
            if b < 0x10:  # long-form field id
                while buf[pos] & 0x80:
                    pos += 1
                pos += 1
            if t in _VARINTS:
                while buf[pos] & 0x80:
                    pos += 1
                pos += 1
            elif t == _BINARY:
                size = shift = 0
                while True:
                    c = buf[pos]
                    pos += 1
                    size |= (c & 0x7F) << shift
                    if c < 0x80:
                        break
                    shift += 7
                pos += size
            elif t not in (_TRUE, _FALSE):
                pos = _skip(buf, pos, t, depth + 1)
    if kind in (_TRUE, _FALSE):
        return pos
    if kind == _BYTE:
        return pos + 1
    if kind == _DOUBLE:
        return pos + 8
    if kind == _BINARY or kind == _MAP or kind in (_LIST, _SET) and buf[pos] >> 4 == 15:
        start = pos + (kind in (_LIST, _SET))
        size = shift = 0
        pos = start
        while True:
            c = buf[pos]
            pos += 1
            size |= (c & 0x7F) << shift
            if c < 0x80:
                break
            shift += 7
            if shift > 63:
                raise ArrowFormatError("a footer integer is longer than 64 bits")
        if kind == _BINARY:
            return pos + size
        elem = buf[start - 1] & 0x0F if kind != _MAP else -1
    elif kind in (_LIST, _SET):
        size, elem = buf[pos] >> 4, buf[pos] & 0x0F
        pos += 1
    else:
        raise ArrowFormatError(f"unknown Thrift type {kind} in the footer")
    if size > len(buf) - pos:
        raise ArrowFormatError(f"a footer list or map claims {size} elements")
    if kind == _MAP:
        if size:
            types = buf[pos]
            pos += 1
            for _ in range(size):
                pos = _skip(buf, pos, types >> 4, depth + 1)
                pos = _skip(buf, pos, types & 0x0F, depth + 1)
        return pos
    if elem in (_TRUE, _FALSE, _BYTE):
        return pos + size
    for _ in range(size):
        pos = _skip(buf, pos, elem, depth + 1)
    return pos


@dataclass(slots=True)
class _Element:
    name: str
    physical: int | None
    type_length: int | None
    repetition: int
    num_children: int | None
    converted: int | None
    scale: int | None
    precision: int | None
    logical: dict[int, Any] | None
    children: list[_Element] = field(default_factory=list)


def _element(raw: Any) -> _Element:
    if not isinstance(raw, dict):
        raise ArrowFormatError("a schema element is not a struct")

    def num(fid: int) -> int | None:
        v = raw.get(fid)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    name = raw.get(4)
    logical = raw.get(10)
    return _Element(
        name=name.decode("utf-8", errors="replace") if isinstance(name, bytes) else "",
        physical=num(1),
        type_length=num(2),
        repetition=num(3) if num(3) is not None else _REQUIRED,  # type: ignore[arg-type]
        num_children=num(5),
        converted=num(6),
        scale=num(7),
        precision=num(8),
        logical=logical if isinstance(logical, dict) else None,
    )


def read_footer(fh: BinaryIO, size: int) -> ParquetMeta:
    """The footer of a Parquet file of `size` bytes, open at any position."""
    if size < 12:
        raise ArrowFormatError(f"{size} bytes is too short for a Parquet file")
    fh.seek(0)
    head = fh.read(4)
    fh.seek(size - 8)
    tail = fh.read(8)
    if len(tail) != 8:
        raise ArrowFormatError("the file is shorter than its size says")
    if tail[4:] == b"PARE":
        raise ArrowFormatError("the footer is encrypted (Parquet modular encryption)")
    if head != MAGIC or tail[4:] != MAGIC:
        raise ArrowFormatError("no Parquet magic bytes at the start and the end")
    length = struct.unpack("<I", tail[:4])[0]
    if length > size - 12:
        raise ArrowFormatError(f"the footer claims {length} bytes, more than the file holds")
    if length > MAX_FOOTER:
        raise ArrowFormatError(
            f"a footer of {length} bytes is more than the {MAX_FOOTER // 2**20} MiB accepted"
        )
    fh.seek(size - 8 - length)
    buf = fh.read(length)
    if len(buf) != length:
        raise ArrowFormatError("the file is shorter than its size says")
    return parse_footer(buf)


def parse_footer(buf: bytes) -> ParquetMeta:
    reader = _Compact(buf)
    schema: list[Any] = []
    num_rows: int | None = None
    row_groups = 0
    key_value: dict[str, str] = {}
    created_by = None
    for fid, kind in reader.fields(0):
        if fid == 2 and kind == _LIST:
            schema = reader.value(kind, 1)
        elif fid == 3 and kind == _I64:
            num_rows = reader.zigzag()
        elif fid == 4 and kind == _LIST:
            size, elem = reader.list_header()
            for _ in range(size):
                reader.skip(elem, 1)
            row_groups = size
        elif fid == 5 and kind == _LIST:
            for kv in reader.value(kind, 1):
                if isinstance(kv, dict) and isinstance(kv.get(1), bytes):
                    value = kv.get(2)
                    key_value[kv[1].decode("utf-8", "replace")] = (
                        value.decode("utf-8", "replace") if isinstance(value, bytes) else ""
                    )
        elif fid == 6 and kind == _BINARY:
            created_by = reader.text()
        else:
            reader.skip(kind, 1)
    if num_rows is None or num_rows < 0:
        raise ArrowFormatError("the footer has no row count")
    if not schema:
        raise ArrowFormatError("the footer has no schema")
    fields = _arrow_fields(_tree([_element(e) for e in schema]))
    origin = key_value.get("ARROW:schema")
    if origin:
        fields = _apply_origin(origin, fields)
    return ParquetMeta(num_rows, row_groups, fields, key_value, created_by)


def _tree(elements: list[_Element]) -> _Element:
    """The root element with its children attached, from the depth-first list."""
    root = elements[0]
    stack: list[tuple[_Element, int]] = [(root, root.num_children or 0)]
    for element in elements[1:]:
        while stack and stack[-1][1] == 0:
            stack.pop()
        if not stack:
            raise ArrowFormatError("the schema lists more elements than its groups hold")
        parent, left = stack[-1]
        stack[-1] = (parent, left - 1)
        parent.children.append(element)
        if element.num_children:
            if len(stack) >= MAX_DEPTH:
                raise ArrowFormatError(f"the schema nests more than {MAX_DEPTH} levels deep")
            stack.append((element, element.num_children))
    if any(left for _, left in stack):
        raise ArrowFormatError("the schema ends before its groups are complete")
    return root


def _arrow_fields(root: _Element) -> list[Field]:
    return [_node(child) for child in root.children]


def _is_group(e: _Element) -> bool:
    return e.num_children is not None and e.physical is None or bool(e.children)


def _node(e: _Element) -> Field:
    if e.repetition == _REPEATED:
        item = Field(e.name, _type(e), False)
        return Field(e.name, DataType("list", (), (item,)), False)
    return Field(e.name, _type(e), e.repetition == _OPTIONAL)


def _logical_id(e: _Element) -> int | None:
    return next(iter(e.logical), None) if e.logical else None


def _type(e: _Element) -> DataType:
    if _is_group(e):
        lid = _logical_id(e)
        if lid == 3 or e.converted == 3:
            return _list(e)
        if lid == 2 or e.converted in (1, 2):
            return _map(e)
        if not e.children:
            raise ArrowFormatError(f"the group '{e.name}' has no fields")
        return DataType("struct", (), tuple(_node(c) for c in e.children))
    return _primitive(e)


def _list(e: _Element) -> DataType:
    if len(e.children) != 1 or e.children[0].repetition != _REPEATED:
        raise ArrowFormatError(f"the list '{e.name}' does not hold one repeated field")
    rep = e.children[0]
    if not _is_group(rep):
        item = Field(rep.name, _primitive(rep), False)
    elif len(rep.children) > 1 or rep.name in ("array", f"{e.name}_tuple"):
        # legacy two-level list whose elements are the repeated group itself
        item = Field(rep.name, DataType("struct", (), tuple(_node(c) for c in rep.children)), False)
    elif len(rep.children) == 1:
        item = _node(rep.children[0])
    else:
        raise ArrowFormatError(f"the list '{e.name}' has an empty element group")
    return DataType("list", (), (item,))


def _map(e: _Element) -> DataType:
    if len(e.children) != 1 or not _is_group(e.children[0]):
        raise ArrowFormatError(f"the map '{e.name}' does not hold one key/value group")
    pair = e.children[0]
    if len(pair.children) != 2:
        raise ArrowFormatError(f"the map '{e.name}' does not have a key and a value")
    key, value = _node(pair.children[0]), _node(pair.children[1])
    key = Field(key.name, key.type, False)
    entries = Field(e.name, DataType("struct", (), (key, value)), False)
    return DataType("map", (False,), (entries,))


_TIME_UNITS = {1: "ms", 2: "us", 3: "ns"}


def _logical_unit(params: Any) -> str:
    unit = params.get(2) if isinstance(params, dict) else None
    if isinstance(unit, dict) and unit:
        found = _TIME_UNITS.get(next(iter(unit)))
        if found:
            return found
    raise ArrowFormatError("a time or timestamp without a known unit")


def _decimal(precision: Any, scale: Any) -> DataType:
    if not isinstance(precision, int) or not isinstance(scale, int) or precision < 1:
        raise ArrowFormatError("a decimal without a valid precision")
    return DataType("decimal128" if precision <= 38 else "decimal256", (precision, scale))


def _primitive(e: _Element) -> DataType:
    physical = _PHYSICAL[e.physical] if e.physical is not None and 0 <= e.physical < 8 else None
    if physical is None:
        raise ArrowFormatError(f"the column '{e.name}' has no known physical type")
    lid = _logical_id(e)
    params = e.logical.get(lid) if e.logical and lid is not None else None
    if lid is not None:
        found = _from_logical(e, physical, lid, params)
        if found is not None:
            return found
    elif e.converted is not None:
        found = _from_converted(e, physical)
        if found is not None:
            return found
    if physical == "FLBA":
        if e.type_length is None or e.type_length < 0:
            raise ArrowFormatError(f"the column '{e.name}' has no byte width")
        return DataType("fixed_size_binary", (e.type_length,))
    plain = {"BOOLEAN": "bool", "INT32": "int32", "INT64": "int64", "FLOAT": "float"}
    plain |= {"DOUBLE": "double", "BYTE_ARRAY": "binary"}
    if physical == "INT96":
        return DataType("timestamp", ("ns", None))
    return DataType(plain[physical])


def _from_logical(e: _Element, physical: str, lid: int, params: Any) -> DataType | None:
    if lid == 1 or lid == 12:  # STRING, JSON
        return DataType("string") if physical == "BYTE_ARRAY" else None
    if lid == 5:  # DECIMAL
        p = params if isinstance(params, dict) else {}
        return _decimal(p.get(2), p.get(1))
    if lid == 6:
        return DataType("date32[day]")
    if lid == 7:  # TIME
        unit = _logical_unit(params)
        return DataType("time32" if unit == "ms" else "time64", (unit,))
    if lid == 8:  # TIMESTAMP
        p = params if isinstance(params, dict) else {}
        return DataType("timestamp", (_logical_unit(p), "UTC" if p.get(1) else None))
    if lid == 10:  # INTEGER
        p = params if isinstance(params, dict) else {}
        width, signed = p.get(1), p.get(2)
        if width not in (8, 16, 32, 64):
            raise ArrowFormatError(f"the column '{e.name}' has an integer of {width} bits")
        return DataType(("int" if signed else "uint") + str(width))
    if lid == 11:
        return DataType("null")
    if lid == 15 and physical == "FLBA":
        return DataType("halffloat")
    return None  # ENUM, BSON, UUID, and newer types: the physical type's own


_CONVERTED_INTS = {11: "uint8", 12: "uint16", 13: "uint32", 14: "uint64"}
_CONVERTED_INTS |= {15: "int8", 16: "int16", 17: "int32", 18: "int64"}


def _from_converted(e: _Element, physical: str) -> DataType | None:
    c = e.converted
    if c in (0, 19) and physical == "BYTE_ARRAY":  # UTF8, JSON
        return DataType("string")
    if c == 5:
        return _decimal(e.precision, e.scale or 0)
    if c == 6:
        return DataType("date32[day]")
    if c == 7:
        return DataType("time32", ("ms",))
    if c == 8:
        return DataType("time64", ("us",))
    if c in (9, 10):  # TIMESTAMP_MILLIS/MICROS: instants, read as UTC
        return DataType("timestamp", ("ms" if c == 9 else "us", "UTC"))
    if c in _CONVERTED_INTS:
        return DataType(_CONVERTED_INTS[c])
    return None


def _apply_origin(encoded: str, fields: list[Field]) -> list[Field]:
    """Refine the inferred fields with the Arrow schema the writer stored (when it fits)."""
    try:
        raw = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        return fields
    try:
        origin = schema_from_message(raw)
    except ArrowFormatError:
        return fields  # Arrow's reader also falls back to the Parquet schema
    if len(origin) != len(fields):
        return fields
    return [_restore(o, f) for o, f in zip(origin, fields, strict=True)]


def _same_shape(a: DataType, b: DataType) -> bool:
    """Equal types, ignoring the names of child fields."""
    return (
        a.id == b.id
        and a.params == b.params
        and len(a.children) == len(b.children)
        and all(_same_shape(x.type, y.type) for x, y in zip(a.children, b.children, strict=True))
    )


def _restore(origin: Field, inferred: Field) -> Field:
    return Field(inferred.name, _restore_type(origin.type, inferred.type), inferred.nullable)


def _restore_type(o: DataType, t: DataType) -> DataType:
    if o.id == "extension":
        storage = o.params[2]
        assert isinstance(storage, DataType)
        restored = _restore_type(storage, t)
        return o if _same_shape(restored, storage) else restored
    if o.id == "dictionary":
        # Arrow's reader restores dictionaries of strings and bytes only, with the values as
        # read (a large_string dictionary comes back with string values)
        if t.id in ("string", "binary"):
            return DataType("dictionary", o.params, (Field("", t),))
        return t
    if t.children and len(o.children) == len(t.children):
        children = tuple(_restore(oc, tc) for oc, tc in zip(o.children, t.children, strict=True))
        if t.id == "list" and o.id in LIST_IDS:
            return DataType(o.id, o.params, children)
        if t.id == o.id:
            return DataType(t.id, t.params, children)
        return DataType(t.id, t.params, children)
    if t.id == "string" and o.id in ("large_string", "string_view"):
        return o
    if t.id == "binary" and o.id in ("large_binary", "binary_view"):
        return o
    if t.id == "timestamp" and o.id == "timestamp" and o.params[1] is not None:
        return DataType("timestamp", (t.params[0], o.params[1]))
    if t.id == "int64" and o.id == "duration":
        return o
    if t.id == "decimal128" and o.id in ("decimal32", "decimal64") and o.params == t.params:
        return o
    return t
