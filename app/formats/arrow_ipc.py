"""Arrow IPC (streaming and file format): the schema and the row count, no column data.

An IPC stream is a sequence of messages: a 0xFFFFFFFF continuation marker (absent in streams
older than Arrow 0.15), a little-endian int32 metadata length, a flatbuffer `Message` padded to
8 bytes, then `bodyLength` bytes of buffers. The first message is the Schema; each RecordBatch
message says how many rows it holds, so rows are counted without reading any body. A length of
0 ends the stream. The file format is the same stream after an 8-byte "ARROW1" header.

Flatbuffers are read with bounds checks on every offset; a corrupt or hostile message raises
ArrowFormatError, never IndexError or a huge allocation.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import BinaryIO

from app.formats.arrow_types import ArrowFormatError, DataType, Field

# One message's flatbuffer metadata; real ones are a few KB even for thousands of columns.
MAX_METADATA = 64 * 1024 * 1024
MAX_DEPTH = 64  # nesting of Field children (list of struct of ...)
FILE_MAGIC = b"ARROW1"

_UNITS = ("s", "ms", "us", "ns")
_HEADER_SCHEMA, _HEADER_DICTIONARY, _HEADER_RECORD_BATCH = 1, 2, 3
# Extension types pyarrow knows without any import: shown as extension<...>. Others read as
# their storage type, as pyarrow reads an extension type nobody registered.
_KNOWN_EXTENSIONS = frozenset({"arrow.uuid", "arrow.json", "arrow.bool8"})


class _Table:
    """A flatbuffer table at `pos` in `buf`, with checked access to its fields."""

    __slots__ = ("buf", "pos", "vtable", "vlen")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        _need(buf, pos, 4)
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        _need(buf, vtable, 4)
        vlen = struct.unpack_from("<H", buf, vtable)[0]
        if vlen < 4 or vlen % 2:
            raise ArrowFormatError("a flatbuffer vtable has a bad size")
        _need(buf, vtable, vlen)
        self.vtable, self.vlen = vtable, vlen

    def _field(self, index: int) -> int:
        at = 4 + 2 * index
        if at + 2 > self.vlen:
            return 0
        off = struct.unpack_from("<H", self.buf, self.vtable + at)[0]
        return self.pos + off if off else 0

    def scalar(self, index: int, fmt: str, default: int) -> int:
        at = self._field(index)
        if not at:
            return default
        _need(self.buf, at, struct.calcsize(fmt))
        return int(struct.unpack_from("<" + fmt, self.buf, at)[0])

    def _indirect(self, index: int) -> int:
        at = self._field(index)
        if not at:
            return 0
        _need(self.buf, at, 4)
        target: int = at + struct.unpack_from("<I", self.buf, at)[0]
        _need(self.buf, target, 4)
        return target

    def table(self, index: int) -> _Table | None:
        target = self._indirect(index)
        return _Table(self.buf, target) if target else None

    def string(self, index: int) -> str | None:
        target = self._indirect(index)
        if not target:
            return None
        return _string_at(self.buf, target)

    def tables(self, index: int) -> list[_Table]:
        target = self._indirect(index)
        if not target:
            return []
        count = struct.unpack_from("<I", self.buf, target)[0]
        _need(self.buf, target + 4, 4 * count)
        out = []
        for i in range(count):
            at = target + 4 + 4 * i
            out.append(_Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0]))
        return out

    def ints(self, index: int) -> list[int]:
        target = self._indirect(index)
        if not target:
            return []
        count = struct.unpack_from("<I", self.buf, target)[0]
        _need(self.buf, target + 4, 4 * count)
        return list(struct.unpack_from(f"<{count}i", self.buf, target + 4))


def _need(buf: bytes, pos: int, size: int) -> None:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise ArrowFormatError("a flatbuffer offset points outside its message")


def _string_at(buf: bytes, pos: int) -> str:
    length = struct.unpack_from("<I", buf, pos)[0]
    _need(buf, pos + 4, length)
    try:
        return buf[pos + 4 : pos + 4 + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArrowFormatError("a name in the schema is not UTF-8") from exc


def _root(buf: bytes) -> _Table:
    _need(buf, 0, 4)
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


def _metadata(table: _Table, index: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for kv in table.tables(index):
        out[kv.string(0) or ""] = kv.string(1) or ""
    return out


def _unit(value: int) -> str:
    if not 0 <= value < len(_UNITS):
        raise ArrowFormatError(f"unknown time unit {value}")
    return _UNITS[value]


def _int_type(t: _Table | None) -> DataType:
    if t is None:
        return DataType("int32")
    width = t.scalar(0, "i", 0)
    if width not in (8, 16, 32, 64):
        raise ArrowFormatError(f"integer of {width} bits")
    return DataType(("int" if t.scalar(1, "B", 0) else "uint") + str(width))


def _field(table: _Table, depth: int, budget: list[int]) -> Field:
    if depth > MAX_DEPTH:
        raise ArrowFormatError(f"the schema nests more than {MAX_DEPTH} levels deep")
    # each field takes at least 8 bytes of a message; more means offsets that point back
    budget[0] -= 1
    if budget[0] < 0:
        raise ArrowFormatError("the schema's fields refer to each other in a loop")
    name = table.string(0) or ""
    nullable = bool(table.scalar(1, "B", 0))
    children = tuple(_field(c, depth + 1, budget) for c in table.tables(5))
    dtype = _type(table.scalar(2, "B", 0), table.table(3), children)
    metadata = _metadata(table, 6)
    ext = metadata.get("ARROW:extension:name")
    if ext in _KNOWN_EXTENSIONS:
        dtype = DataType("extension", (ext, ext, dtype))
    elif ext == "arrow.fixed_shape_tensor":
        dtype = _tensor(dtype, metadata.get("ARROW:extension:metadata", ""))
    encoding = table.table(4)
    if encoding is not None:
        index = _int_type(encoding.table(1))
        dtype = DataType(
            "dictionary", (index, bool(encoding.scalar(2, "B", 0))), (Field("", dtype),)
        )
    return Field(name, dtype, nullable)


def _tensor(storage: DataType, raw: str) -> DataType:
    """arrow.fixed_shape_tensor, spelled with its value type and shape as pyarrow does."""
    try:
        meta = json.loads(raw)
        shape = [int(n) for n in meta["shape"]]
    except (ValueError, TypeError, KeyError):
        return storage
    if storage.id != "fixed_size_list":
        return storage
    text = f"arrow.fixed_shape_tensor[value_type={storage.children[0].type}, "
    text += "shape=[" + ",".join(str(n) for n in shape) + "]"
    if meta.get("permutation"):
        text += ", permutation=[" + ",".join(str(n) for n in meta["permutation"]) + "]"
    if meta.get("dim_names"):
        text += ", dim_names=[" + ",".join(str(n) for n in meta["dim_names"]) + "]"
    return DataType("extension", ("arrow.fixed_shape_tensor", text + "]", storage))


def _type(kind: int, t: _Table | None, children: tuple[Field, ...]) -> DataType:
    simple = {1: "null", 4: "binary", 5: "string", 6: "bool", 19: "large_binary"}
    simple |= {20: "large_string", 23: "binary_view", 24: "string_view"}
    if kind in simple:
        return DataType(simple[kind])
    listed = {12: "list", 21: "large_list", 25: "list_view", 26: "large_list_view"}
    if kind in listed or kind in (16, 17):
        if len(children) != 1:
            raise ArrowFormatError("a list type without exactly one child")
    if kind in listed:
        return DataType(listed[kind], (), children)
    if kind == 13:
        return DataType("struct", (), children)
    if kind == 22:
        if len(children) != 2:
            raise ArrowFormatError("a run-end encoded type without its two children")
        return DataType("run_end_encoded", (), children)
    if t is None:
        raise ArrowFormatError(f"Arrow type id {kind} without its parameters")
    if kind == 2:
        return _int_type(t)
    if kind == 3:
        precision = t.scalar(0, "h", 0)
        if precision not in (0, 1, 2):
            raise ArrowFormatError(f"unknown floating point precision {precision}")
        return DataType(("halffloat", "float", "double")[precision])
    if kind == 7:
        width = t.scalar(2, "i", 128)
        if width not in (32, 64, 128, 256):
            raise ArrowFormatError(f"decimal of {width} bits")
        return DataType(f"decimal{width}", (t.scalar(0, "i", 0), t.scalar(1, "i", 0)))
    if kind == 8:
        return DataType("date32[day]" if t.scalar(0, "h", 1) == 0 else "date64[ms]")
    if kind == 9:
        width = t.scalar(1, "i", 32)
        return DataType("time32" if width == 32 else "time64", (_unit(t.scalar(0, "h", 1)),))
    if kind == 10:
        return DataType("timestamp", (_unit(t.scalar(0, "h", 0)), t.string(1) or None))
    if kind == 11:
        units = ("month_interval", "day_time_interval", "month_day_nano_interval")
        unit = t.scalar(0, "h", 0)
        if not 0 <= unit < len(units):
            raise ArrowFormatError(f"unknown interval unit {unit}")
        return DataType(units[unit])
    if kind == 14:
        mode = "dense_union" if t.scalar(0, "h", 0) == 1 else "sparse_union"
        codes = t.ints(1) or list(range(len(children)))
        return DataType(mode, tuple(codes), children)
    if kind == 15:
        return DataType("fixed_size_binary", (t.scalar(0, "i", 0),))
    if kind == 16:
        return DataType("fixed_size_list", (t.scalar(0, "i", 0),), children)
    if kind == 17:
        # pyarrow reads a map's fields as entries/key/value whatever the stream names them
        pair = children[0].type.children
        if children[0].type.id != "struct" or len(pair) != 2:
            raise ArrowFormatError("a map type whose entries are not a key/value struct")
        kv = (Field("key", pair[0].type, False), Field("value", pair[1].type, pair[1].nullable))
        entries = Field("entries", DataType("struct", (), kv), False)
        return DataType("map", (bool(t.scalar(0, "B", 0)),), (entries,))
    if kind == 18:
        return DataType("duration", (_unit(t.scalar(0, "h", 1)),))
    raise ArrowFormatError(f"unknown Arrow type id {kind}")


def schema_from_flatbuffer(table: _Table) -> list[Field]:
    budget = [len(table.buf) // 8 + 1]
    return [_field(f, 0, budget) for f in table.tables(1)]


def _message(buf: bytes) -> tuple[int, _Table | None, int]:
    """(header type, header table, body length) of one Message flatbuffer."""
    msg = _root(buf)
    body = msg.scalar(3, "q", 0)
    if body < 0:
        raise ArrowFormatError("a message with a negative body length")
    return msg.scalar(1, "B", 0), msg.table(2), body


def schema_from_message(raw: bytes) -> list[Field]:
    """The fields of one encapsulated Schema message (with or without its length prefix)."""
    if raw[:4] == b"\xff\xff\xff\xff":
        raw = raw[4:]
    if len(raw) >= 4:
        length = struct.unpack_from("<i", raw, 0)[0]
        if 0 < length <= len(raw) - 4:
            raw = raw[4 : 4 + length]
    kind, header, _ = _message(raw)
    if kind != _HEADER_SCHEMA or header is None:
        raise ArrowFormatError("the embedded Arrow schema is not a Schema message")
    return schema_from_flatbuffer(header)


def _read_exact(fh: BinaryIO, size: int) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise ArrowFormatError(f"the stream ends {size - len(data)} bytes into a message")
    return data


def read_stream(
    fh: BinaryIO, size: int, check_cancel: Callable[[], None] | None = None
) -> tuple[list[Field], int]:
    """(schema fields, total rows) of an Arrow IPC stream or file of `size` bytes."""
    start = fh.read(8)
    if start[:6] == FILE_MAGIC:
        pos = 8
    else:
        fh.seek(0)
        pos = 0
    fields: list[Field] | None = None
    rows = 0
    while True:
        head = fh.read(4)
        if len(head) == 0:
            break
        if len(head) != 4:
            raise ArrowFormatError("the stream ends inside a message header")
        pos += 4
        if head == b"\xff\xff\xff\xff":
            head = _read_exact(fh, 4)
            pos += 4
        length = struct.unpack("<i", head)[0]
        if length == 0:
            break
        if length < 0 or length > MAX_METADATA:
            raise ArrowFormatError(f"a message claims {length} bytes of metadata")
        if pos + length > size:
            raise ArrowFormatError("a message runs past the end of the stream")
        kind, header, body = _message(_read_exact(fh, length))
        pos += length
        if fields is None:
            if kind != _HEADER_SCHEMA or header is None:
                raise ArrowFormatError("the stream does not start with a schema")
            fields = schema_from_flatbuffer(header)
        elif kind == _HEADER_RECORD_BATCH and header is not None:
            count = header.scalar(0, "q", 0)
            if count < 0:
                raise ArrowFormatError("a record batch with a negative length")
            rows += count
        elif kind not in (_HEADER_DICTIONARY, _HEADER_RECORD_BATCH):
            raise ArrowFormatError(f"unexpected message type {kind} in the stream")
        if pos + body > size:
            raise ArrowFormatError("a record batch's data runs past the end of the stream")
        fh.seek(body, 1)
        pos += body
        if check_cancel is not None:
            check_cancel()
    if fields is None:
        raise ArrowFormatError("the stream holds no schema")
    return fields, rows
