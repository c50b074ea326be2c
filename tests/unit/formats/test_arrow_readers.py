"""The pure-Python Parquet footer and Arrow IPC readers, checked against pyarrow (a test-only
dependency: an independent writer and reader) on every type, layout, codec and kind of damage.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.formats import detect
from app.formats.arrow_ipc import read_stream
from app.formats.arrow_types import ArrowFormatError
from app.formats.parquet_footer import MAX_DEPTH, parse_footer, read_footer

from .helpers import by_format, messages

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "formats"


def _table() -> pa.Table:
    """One column per Arrow type Parquet can hold, nested ones included."""
    n = 3
    tensor = pa.fixed_shape_tensor(pa.float32(), [2])
    cols: dict[str, Any] = {
        "bool": pa.array([True, None, False]),
        "i8": pa.array([1, 2, None], pa.int8()),
        "i16": pa.array([1, 2, 3], pa.int16()),
        "i32": pa.array([1, 2, 3], pa.int32()),
        "i64": pa.array([1, None, 3], pa.int64()),
        "u8": pa.array([1, 2, 3], pa.uint8()),
        "u16": pa.array([1, 2, 3], pa.uint16()),
        "u32": pa.array([1, 2, 3], pa.uint32()),
        "u64": pa.array([1, 2, 3], pa.uint64()),
        "f16": pa.array([1.0, 2.0, None], pa.float16()),
        "f32": pa.array([1.0, 2.0, 3.0], pa.float32()),
        "f64": pa.array([1.0, 2.0, 3.0]),
        "dec": pa.array([decimal.Decimal("1.25")] * n, pa.decimal128(9, 2)),
        "dec38": pa.array([decimal.Decimal("1.25")] * n, pa.decimal128(38, 2)),
        "dec256": pa.array([decimal.Decimal("1.25")] * n, pa.decimal256(60, 2)),
        "str": pa.array(["a", None, "ccc"]),
        "lstr": pa.array(["a", "b", "c"], pa.large_string()),
        "vstr": pa.array(["a", "b", "c"], pa.string_view()),
        "bin": pa.array([b"a", b"", None]),
        "lbin": pa.array([b"a", b"", None], pa.large_binary()),
        "fsb": pa.array([b"ab", b"cd", b"ef"], pa.binary(2)),
        "d32": pa.array([datetime.date(2026, 1, 1)] * n),
        "d64": pa.array([1, 2, 3], pa.date64()),
        "t32s": pa.array([1, 2, 3], pa.time32("s")),
        "t32ms": pa.array([1, 2, 3], pa.time32("ms")),
        "t64us": pa.array([1, 2, 3], pa.time64("us")),
        "t64ns": pa.array([1, 2, 3], pa.time64("ns")),
        "ts_s": pa.array([1, 2, 3], pa.timestamp("s")),
        "ts_ms_utc": pa.array([1, 2, 3], pa.timestamp("ms", tz="UTC")),
        "ts_us_tz": pa.array([1, 2, 3], pa.timestamp("us", tz="Europe/Paris")),
        "ts_ns_off": pa.array([1, 2, 3], pa.timestamp("ns", tz="+05:30")),
        "dur": pa.array([1, 2, 3], pa.duration("us")),
        "null": pa.array([None] * n, pa.null()),
        "dict": pa.array(["x", "y", "x"]).dictionary_encode(),
        "dict8": pa.array(["x", "y", "x"])
        .dictionary_encode()
        .cast(pa.dictionary(pa.int8(), pa.string())),
        "dict_int": pa.array([1, 2, 1]).dictionary_encode(),
        "list": pa.array([[1, 2], [], None], pa.list_(pa.int64())),
        "list_nn": pa.array([[1], [2], [3]], pa.list_(pa.field("v", pa.int32(), False))),
        "llist": pa.array([[1], [2], [3]], pa.large_list(pa.int16())),
        "fslist": pa.array([[1, 2]] * n, pa.list_(pa.float64(), 2)),
        "list_view": pa.array([[1], [2], [3]], pa.list_view(pa.int32())),
        "list_list": pa.array([[[1]], [[2, 3]], None], pa.list_(pa.list_(pa.int8()))),
        "list_struct": pa.array(
            [[{"a": 1, "b": "x"}]] * n, pa.list_(pa.struct([("a", pa.int64()), ("b", "string")]))
        ),
        "struct": pa.array(
            [{"a": 1, "b": {"c": "x"}}] * n,
            pa.struct(
                [
                    pa.field("a", pa.int64(), False),
                    ("b", pa.struct([("c", pa.large_string())])),
                ]
            ),
        ),
        "struct_dict": pa.array(
            [{"d": "x"}] * n, pa.struct([("d", pa.dictionary(pa.int16(), pa.string()))])
        ),
        "map": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
        "map_struct": pa.array(
            [[("k", {"x": 1})]] * n, pa.map_(pa.string(), pa.struct([("x", pa.int32())]))
        ),
        "list_map": pa.array([[[("k", 1)]]] * n, pa.list_(pa.map_(pa.string(), pa.int8()))),
        "uuid": pa.array([b"0123456789abcdef"] * n, pa.uuid()),
        "json": pa.array(["{}"] * n, pa.json_()),
        "bool8": pa.array([1, 0, 1], pa.bool8()),
        "tensor": pa.ExtensionArray.from_storage(
            tensor, pa.array([[1, 2]] * n, pa.list_(pa.float32(), 2))
        ),
    }
    return pa.table(cols)


def _check_parquet(path: Path) -> None:
    with path.open("rb") as fh:
        ours = read_footer(fh, path.stat().st_size)
    ref = pq.ParquetFile(path).metadata
    theirs = ref.schema.to_arrow_schema()
    assert ours.num_rows == ref.num_rows
    assert ours.row_groups == ref.num_row_groups
    assert [(f.name, str(f.type)) for f in ours.fields] == [(f.name, str(f.type)) for f in theirs]


WRITES = {
    "default": {},
    "no-arrow-schema": {"store_schema": False},
    "format-1.0": {"version": "1.0", "coerce_timestamps": "us", "allow_truncated_timestamps": True},
    "snappy-v2-pages": {"compression": "snappy", "data_page_version": "2.0"},
    "zstd-small-groups": {"compression": "zstd", "row_group_size": 1},
    "gzip-no-dictionary": {"compression": "gzip", "use_dictionary": False},
    "brotli-stats-off": {"compression": "brotli", "write_statistics": False},
    "legacy-nested-names": {"use_compliant_nested_type": False},
    "page-index-bloom": {"write_page_index": True, "store_decimal_as_integer": True},
}


@pytest.mark.parametrize("options", WRITES.values(), ids=WRITES.keys())
def test_parquet_footer_matches_pyarrow(tmp_path: Path, options: dict[str, Any]) -> None:
    path = tmp_path / "all.parquet"
    pq.write_table(_table(), path, **options)
    _check_parquet(path)


def test_parquet_many_row_groups_and_columns(tmp_path: Path) -> None:
    table = pa.table({f"c{i}": pa.array(range(500), pa.int32()) for i in range(300)})
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path, row_group_size=7)
    _check_parquet(path)
    with path.open("rb") as fh:
        meta = read_footer(fh, path.stat().st_size)
    assert (meta.num_rows, meta.row_groups, len(meta.fields)) == (500, 72, 300)


def test_parquet_empty_table_and_metadata(tmp_path: Path) -> None:
    table = pa.table({"a": pa.array([], pa.int64())}).replace_schema_metadata({"k": "v"})
    path = tmp_path / "empty.parquet"
    pq.write_table(table, path)
    _check_parquet(path)
    with path.open("rb") as fh:
        meta = read_footer(fh, path.stat().st_size)
    assert meta.num_rows == 0 and meta.key_value["k"] == "v"


@pytest.mark.parametrize(
    "path",
    [SAMPLES / "parquet" / "diabetes.parquet", *sorted((SAMPLES / "hf_hub").rglob("*.parquet"))],
    ids=lambda p: p.name,
)
def test_parquet_samples_from_other_writers(path: Path) -> None:
    _check_parquet(path)  # pandas and Hugging Face datasets wrote these


# --- hand-made footers: legacy layouts other writers produce, and lies ---------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _zz(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _struct(fields: list[tuple[int, int, bytes]]) -> bytes:
    """A Thrift compact struct from (field id, type code, encoded value), ids ascending."""
    out, last = bytearray(), 0
    for fid, kind, value in fields:
        delta = fid - last
        out += bytes([(delta << 4) | kind]) if 0 < delta < 16 else bytes([kind]) + _zz(fid)
        out += value
        last = fid
    return bytes(out + b"\x00")


def _list(kind: int, items: list[bytes]) -> bytes:
    n = len(items)
    head = bytes([(n << 4) | kind]) if n < 15 else bytes([0xF0 | kind]) + _varint(n)
    return head + b"".join(items)


def _text(s: str) -> bytes:
    return _varint(len(s.encode())) + s.encode()


def _element(
    name: str, physical: int | None = None, rep: int = 1, children: int | None = None,
    converted: int | None = None, **extra: int,
) -> bytes:  # fmt: skip
    f: list[tuple[int, int, bytes]] = []
    if physical is not None:
        f.append((1, 5, _zz(physical)))
    if "length" in extra:
        f.append((2, 5, _zz(extra["length"])))
    f.append((3, 5, _zz(rep)))
    f.append((4, 8, _text(name)))
    if children is not None:
        f.append((5, 5, _zz(children)))
    if converted is not None:
        f.append((6, 5, _zz(converted)))
    if "scale" in extra:
        f.append((7, 5, _zz(extra["scale"])))
        f.append((8, 5, _zz(extra["precision"])))
    return _struct(f)


def _footer(elements: list[bytes], rows: int = 0, extra: bytes = b"") -> bytes:
    """FileMetaData with no row group; `extra` holds encoded fields from id 5 on."""
    meta = _struct(
        [(1, 5, _zz(1)), (2, 9, _list(12, elements)), (3, 6, _zz(rows)), (4, 9, _list(12, []))]
    )
    return meta[:-1] + extra + b"\x00"


def _file(footer: bytes) -> bytes:
    return b"PAR1" + footer + struct.pack("<I", len(footer)) + b"PAR1"


LEGACY = [
    _element("schema", rep=0, children=10),
    _element("name", 6, converted=0),
    _element("ts_ms", 2, converted=9),
    _element("ts_us", 2, converted=10),
    _element("tiny", 1, converted=15),
    _element("u16", 1, converted=12),
    _element("price", 1, converted=5, scale=2, precision=7),
    # legacy two-level list of a primitive (parquet-avro, old Hive)
    _element("tags", rep=1, children=1, converted=3),
    _element("array", 6, rep=2, converted=0),
    # a list whose repeated group is the element: name "<list>_tuple"
    _element("pairs", rep=1, children=1, converted=3),
    _element("pairs_tuple", rep=2, children=2),
    _element("a", 1, rep=0),
    _element("b", 2, rep=1),
    # MAP_KEY_VALUE from old writers
    _element("attrs", rep=1, children=1, converted=1),
    _element("map", rep=2, children=2, converted=2),
    _element("key", 6, rep=0, converted=0),
    _element("value", 5, rep=1),
    # an un-annotated repeated field: a non-null list of non-null values
    _element("ids", 2, rep=2),
]


def test_legacy_converted_types_read_as_pyarrow_does(tmp_path: Path) -> None:
    path = tmp_path / "legacy.parquet"
    path.write_bytes(_file(_footer(LEGACY, rows=0)))
    _check_parquet(path)


def _read_bytes(raw: bytes) -> Any:
    return read_footer(io.BytesIO(raw), len(raw))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"PAR1", "too short"),
        (b"PAR1" + b"\0" * 20 + b"PARX", "magic"),
        (b"XXXX" + b"\0" * 20 + struct.pack("<I", 4) + b"PAR1", "magic"),
        (b"PAR1\0\0\0\0" + struct.pack("<I", 2**32 - 1) + b"PAR1", "more than the file holds"),
        (b"PAR1\0\0\0\0" + struct.pack("<I", 4) + b"PARE", "encrypted"),
        (_file(b""), "ends in the middle"),
        (_file(_struct([(2, 9, _list(12, [_element("schema", rep=0, children=0)]))])), "row count"),
        # a schema list that claims a billion elements in a 40-byte footer
        (_file(_struct([(2, 9, bytes([0xFC]) + _varint(10**9))])), "claims 1000000000"),
        (_file(_struct([(6, 8, _varint(2**40))])), "past the footer's end"),
        (_file(_struct([(9, 8, _varint(2**40))])), "ends in the middle"),  # a skipped field
        (_file(_struct([(9, 9, bytes([0xF5]) + _varint(10**9))])), "claims 1000000000"),
        (_file(_struct([(9, 5, b"\x80" * 30)])), "ends in the middle"),
        (_file(_footer([_element("schema", rep=0, children=3), _element("a", 1)])), "ends before"),
        (_file(_footer([_element("schema", rep=0, children=1), _element("a", 1)] * 2)), "more"),
        (_file(_footer([_element("schema", rep=0, children=1), _element("a", 9)])), "physical"),
        (_file(b"\x0c" * 5000), "nests more than"),
        # lists of lists (in a field read, in a field skipped) and maps of maps
        (_file(bytes([0x29]) + bytes([0x19]) * 5000), "nests more than"),
        (_file(bytes([0x19]) + bytes([0x19]) * 5000), "nests more than"),
        (_file(bytes([0x1B]) + b"\x01\x99" * 3000), "nests more than"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_footers_raise_a_clear_error(raw: bytes, reason: str) -> None:
    with pytest.raises(ArrowFormatError, match=reason):
        _read_bytes(raw)


def test_deep_schema_nesting_is_refused() -> None:
    depth = MAX_DEPTH + 5
    elements = [_element("schema", rep=0, children=1)]
    elements += [_element(f"g{i}", rep=1, children=1) for i in range(depth)]
    elements.append(_element("leaf", 1))
    with pytest.raises(ArrowFormatError, match="nests more than"):
        parse_footer(_footer(elements))


def test_huge_footer_claim_is_refused_before_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.formats import parquet_footer

    monkeypatch.setattr(parquet_footer, "MAX_FOOTER", 16)
    raw = _file(_footer([_element("schema", rep=0, children=1), _element("a", 1)]))
    with pytest.raises(ArrowFormatError, match="MiB accepted"):
        _read_bytes(raw)


def test_corrupt_arrow_schema_metadata_falls_back_to_parquet() -> None:
    """pyarrow refuses such a file; the Parquet schema alone still describes it."""
    kv = _struct([(1, 8, _text("ARROW:schema")), (2, 8, _text(base64.b64encode(b"junk").decode()))])
    elements = [_element("schema", rep=0, children=1), _element("s", 6, converted=0)]
    raw = _file(_footer(elements, rows=0, extra=bytes([0x19]) + _list(12, [kv])))
    with pytest.raises(pa.ArrowInvalid, match="metadata bytes"):
        _ = pq.ParquetFile(io.BytesIO(raw)).schema_arrow
    meta = _read_bytes(raw)
    assert [(f.name, str(f.type)) for f in meta.fields] == [("s", "string")]


SAMPLE = (SAMPLES / "parquet" / "diabetes.parquet").read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_parquet_never_crashes(data: st.DataObject) -> None:
    raw = bytearray(SAMPLE)
    footer_start = len(raw) - 8 - struct.unpack("<I", raw[-8:-4])[0]
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(footer_start, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        meta = _read_bytes(bytes(raw))
    except ArrowFormatError:
        return
    assert meta.num_rows >= 0 and all(str(f.type) for f in meta.fields)


# --- Arrow IPC ---------------------------------------------------------------------------


def _ipc(table: pa.Table, *, file: bool = False, batches: int = 3, **options: Any) -> bytes:
    sink = io.BytesIO()
    opts = pa.ipc.IpcWriteOptions(**options)
    open_writer = pa.ipc.new_file if file else pa.ipc.new_stream
    with open_writer(sink, table.schema, options=opts) as writer:
        for _ in range(batches):
            writer.write_table(table, max_chunksize=2)
    return sink.getvalue()


def _ipc_table() -> pa.Table:
    table = _table()
    extra = {
        "interval": pa.array([pa.MonthDayNano([1, 2, 3])] * 3, pa.month_day_nano_interval()),
        "sparse": pa.UnionArray.from_sparse(
            pa.array([0, 1, 0], pa.int8()), [pa.array([1, 2, 3]), pa.array(["a", "b", "c"])]
        ),
        "dense": pa.UnionArray.from_dense(
            pa.array([0, 1, 0], pa.int8()),
            pa.array([0, 0, 1], pa.int32()),
            [pa.array([1, 2]), pa.array(["a"])],
            ["x", "y"],
            [5, 7],
        ),
        "ree": pa.RunEndEncodedArray.from_arrays(pa.array([3], pa.int32()), pa.array(["a"])),
        "binview": pa.array([b"a", b"b", b"c"], pa.binary_view()),
        "llview": pa.array([[1], [2], [3]], pa.large_list_view(pa.int8())),
        "dec32": pa.array([None] * 3, pa.decimal32(5, 2)),
        "dec64": pa.array([None] * 3, pa.decimal64(15, 2)),
        "sorted_map": pa.array(
            [[("k", 1)]] * 3, pa.map_(pa.string(), pa.int64(), keys_sorted=True)
        ),
    }
    for name, column in extra.items():
        table = table.append_column(name, column)
    return table


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"file": True},
        {"compression": "zstd"},
        {"compression": "lz4", "file": True},
        {"metadata_version": pa.ipc.MetadataVersion.V4},
        {"batches": 0},
    ],
    ids=["stream", "file", "zstd", "lz4-file", "v4", "schema-only"],
)
def test_ipc_schema_and_rows_match_pyarrow(options: dict[str, Any]) -> None:
    table = _ipc_table()
    raw = _ipc(table, **options)
    fields, rows = read_stream(io.BytesIO(raw), len(raw))
    reader = pa.ipc.open_file(raw) if options.get("file") else pa.ipc.open_stream(raw)
    theirs = reader.schema
    expected = (
        sum(b.num_rows for b in (reader.get_batch(i) for i in range(reader.num_record_batches)))
        if options.get("file")
        else reader.read_all().num_rows
    )  # noqa: E501
    assert rows == expected == table.num_rows * options.get("batches", 3)
    assert [(f.name, str(f.type)) for f in fields] == [(f.name, str(f.type)) for f in theirs]


def test_ipc_dictionary_deltas_count_rows_once() -> None:
    schema = pa.schema([("d", pa.dictionary(pa.int32(), pa.string()))])
    sink = io.BytesIO()
    opts = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=True)
    with pa.ipc.new_stream(sink, schema, options=opts) as writer:
        for words in (["a", "b"], ["a", "b", "c"], ["d"]):
            arr = pa.array(words).dictionary_encode()
            writer.write_batch(pa.record_batch([arr], schema=schema))
    raw = sink.getvalue()
    assert read_stream(io.BytesIO(raw), len(raw))[1] == 6


def test_ipc_stream_without_end_marker_and_legacy_prefix() -> None:
    table = pa.table({"a": [1, 2, 3]})
    raw = _ipc(table)
    assert raw.endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00")
    cut = raw[:-8]
    assert read_stream(io.BytesIO(cut), len(cut))[1] == pa.ipc.open_stream(cut).read_all().num_rows
    legacy = _ipc(table, use_legacy_format=True)
    assert read_stream(io.BytesIO(legacy), len(legacy))[1] == 9


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xff\xff\xff\x00\x00\x00", "ends"),
        (b"\xff\xff\xff\xff" + struct.pack("<i", 2**31 - 1), "claims"),
        (b"\xff\xff\xff\xff" + struct.pack("<i", -8), "claims"),
        (b"\xff\xff\xff\xff" + struct.pack("<i", 8) + b"\x00" * 8, "flatbuffer"),
        (b"\xff\xff\xff\xff\x00\x00\x00\x00", "no schema"),
        (b"", "no schema"),
    ],
)
def test_bad_ipc_raises_a_clear_error(raw: bytes, reason: str) -> None:
    with pytest.raises(ArrowFormatError, match=reason):
        read_stream(io.BytesIO(raw), len(raw))


IPC_SAMPLE = _ipc(pa.table({"a": [1, 2, 3], "s": ["x", "y", "z"], "l": [[1], [], None]}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_ipc_never_crashes(data: st.DataObject) -> None:
    raw = bytearray(IPC_SAMPLE)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        fields, rows = read_stream(io.BytesIO(bytes(raw)), len(raw))
    except ArrowFormatError:
        return
    assert rows >= 0 and all(str(f.type) for f in fields)


def test_deeply_nested_ipc_schema_is_refused() -> None:
    t: pa.DataType = pa.int8()
    for _ in range(MAX_DEPTH + 5):
        t = pa.list_(t)
    raw = pa.schema([("deep", t)]).serialize().to_pybytes()
    with pytest.raises(ArrowFormatError, match="nests more than"):
        read_stream(io.BytesIO(raw), len(raw))


# --- detection without pyarrow ---------------------------------------------------------


def test_detection_reads_parquet_and_arrow_without_pyarrow(tmp_path: Path) -> None:
    """The app's runtime does not ship pyarrow: detection must work with it unimportable."""
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from app.formats import detect\n"
        "for name in sys.argv[1:]:\n"
        "    for p in detect(name).parts:\n"
        "        print(p.format, p.record_count, sorted(p.schema.items()), p.problems)\n"
    )
    args = [str(SAMPLES / n) for n in ("parquet", "hf_save_to_disk", "hf_hub")]
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("parquet 442 ") and lines[0].endswith("[]")
    assert lines[1].startswith("hf-save-to-disk 20 ") and lines[2].startswith("hf-hub 20 ")


def test_truncated_parquet_names_the_reason(tmp_path: Path) -> None:
    f = tmp_path / "cut.parquet"
    f.write_bytes(SAMPLE[:-100])
    part = by_format(detect(f), "parquet")
    assert part.record_count is None
    assert "not a readable Parquet file (truncated or corrupt): no Parquet magic" in messages(
        part.problems
    )


def _fanout_schema_message(levels: int, fanout: int) -> bytes:
    """A Schema message of `levels` struct fields, each listing the next `fanout` times.

    Offsets point forward only, so a field cannot hold itself, but shared children make
    fanout ** levels fields out of a few hundred bytes.
    """
    buf = bytearray(4)  # the root offset, patched below
    patches: list[tuple[int, str]] = []
    marks: dict[str, int] = {}

    def table(name: str, slots: dict[int, int | str]) -> None:
        count = max(slots) + 1 if slots else 0
        offsets = [0] * count
        for k, index in enumerate(sorted(slots)):
            offsets[index] = 4 + 4 * k
        vtable = len(buf)
        buf.extend(struct.pack(f"<HH{count}H", 4 + 2 * count, 4 + 4 * len(slots), *offsets))
        buf.extend(b"\0" * (-len(buf) % 4))  # tables 4-byte aligned, as verifiers want
        marks[name] = len(buf)
        buf.extend(struct.pack("<i", marks[name] - vtable))
        for index in sorted(slots):
            value = slots[index]
            if isinstance(value, str):
                patches.append((len(buf), value))
                value = 0
            buf.extend(struct.pack("<I", value))

    def vector(name: str, target: str, count: int) -> None:
        marks[name] = len(buf)
        buf.extend(struct.pack("<I", count))
        for _ in range(count):
            patches.append((len(buf), target))
            buf.extend(b"\0\0\0\0")

    table("message", {0: 4, 1: 1, 2: "schema"})  # metadata V5, a Schema header
    table("schema", {1: "fields"})
    vector("fields", "field0", 1)
    for level in range(levels):
        slots: dict[int, int | str] = {0: "name", 2: 13, 3: "struct"}
        if level + 1 < levels:
            slots[5] = f"children{level}"
        table(f"field{level}", slots)
        if level + 1 < levels:
            vector(f"children{level}", f"field{level + 1}", fanout)
    table("struct", {})
    marks["name"] = len(buf)
    buf.extend(struct.pack("<I", 1) + b"x\0\0\0")
    patches.append((0, "message"))
    for at, target in patches:
        struct.pack_into("<I", buf, at, marks[target] - at)
    return b"\xff\xff\xff\xff" + struct.pack("<i", len(buf)) + bytes(buf)


def test_fanout_schema_builder_makes_a_valid_schema() -> None:
    raw = _fanout_schema_message(levels=3, fanout=2)
    ours = read_stream(io.BytesIO(raw), len(raw))[0]
    theirs = pa.ipc.open_stream(raw).schema
    assert [str(f.type) for f in ours] == [str(f.type) for f in theirs]
    inner = "struct<x: struct<> not null, x: struct<> not null> not null"
    assert str(ours[0].type) == f"struct<x: {inner}, x: {inner}>"


@pytest.mark.timeout(30)
def test_ipc_schema_with_shared_children_is_refused_quickly() -> None:
    raw = _fanout_schema_message(levels=12, fanout=40)
    with pytest.raises(ArrowFormatError, match="loop"):
        read_stream(io.BytesIO(raw), len(raw))
