"""Croissant export checked by MLCommons' own mlcroissant: it loads, validates and yields rows."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.formats.base import DetectionReport, FormatReport
from app.manifest.canonical import Manifest
from app.manifest.croissant import (
    CONFORMS_TO,
    CroissantMeta,
    build_croissant,
    croissant_data_type,
    encoding_format,
    write_croissant,
)

ManifestOf = Callable[[Path], Manifest]
SAMPLE = Path(__file__).parents[2] / "fixtures" / "manifest" / "diabetes.csv"
META = CroissantMeta(
    name="diabetes-sample",
    description="Diabetes regression sample.",
    license="CC-BY-4.0",
    url="https://registry.example/contributions/42",
    creators=("Ada Contributor",),
    date_published=dt.date(2026, 11, 26),
)

# mlcroissant parses JSON-LD with rdflib's ConjunctiveGraph, which rdflib now deprecates; with
# filterwarnings=error that third-party DeprecationWarning would fail every test here. Only that
# one message is ignored; validation problems are checked explicitly through ctx.issues.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")


def _load(path: Path) -> Any:
    import mlcroissant as mlc  # imported here: slow, and warns on import (see pytestmark)

    dataset = mlc.Dataset(jsonld=str(path))  # raises ValidationError on errors
    issues = dataset.metadata.ctx.issues
    assert not issues.errors, issues.report()
    assert not issues.warnings, issues.report()
    return dataset


def _dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    (root / "shards").mkdir(parents=True)
    shutil.copyfile(SAMPLE, root / "diabetes.csv")
    with open(root / "shards" / "part 1.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["id", "label", "ok"], [1, "cat", "true"], [2, "dog", "false"]])
    with open(root / "shards" / "part-2.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "label", "ok"], [3, "émeu", "true"]])
    (root / "README.md").write_text("# readme\n")
    return root


def _report() -> DetectionReport:
    with open(SAMPLE, newline="") as fh:
        columns = next(csv.reader(fh))
    return DetectionReport(
        parts=[
            FormatReport("csv", "diabetes.csv", 442, {c: "float64" for c in columns}),
            FormatReport("csv", "shards", 3, {"id": "int64", "label": "string", "ok": "bool"}),
            FormatReport("text", "README.md"),
        ]
    )


def test_croissant_validates_and_yields_csv_records(
    tmp_path: Path, manifest_of: ManifestOf
) -> None:
    root = _dataset(tmp_path)
    manifest = manifest_of(root)
    out = root / "croissant.json"
    write_croissant(META, manifest, _report(), out)

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["conformsTo"] == CONFORMS_TO
    objects = {d["contentUrl"]: d for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    assert {p: o["sha256"] for p, o in objects.items()} == {
        e.path: e.sha256 for e in manifest.files
    }
    assert objects["diabetes.csv"]["encodingFormat"] == "text/csv"

    dataset = _load(out)
    rows = list(dataset.records(record_set="records/diabetes.csv"))
    assert len(rows) == 442
    first = rows[0]
    assert first["records/diabetes.csv/target"] == pytest.approx(151.0)
    assert first["records/diabetes.csv/age"] == pytest.approx(0.038075906433423026)

    shard_rows = list(dataset.records(record_set="records/shards"))
    got = sorted(
        (r["records/shards/id"], r["records/shards/label"].decode(), r["records/shards/ok"])
        for r in shard_rows
    )
    assert got == [(1, "cat", True), (2, "dog", False), (3, "émeu", True)]


def test_croissant_without_tabular_parts_still_validates(
    tmp_path: Path, manifest_of: ManifestOf
) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a b.png").write_bytes(b"\x89PNG....")
    (root / "notes.txt").write_text("x")
    doc = build_croissant(META, manifest_of(root), DetectionReport())
    assert "recordSet" not in doc
    out = root / "croissant.json"
    out.write_text(json.dumps(doc))
    dataset = _load(out)
    assert {fo.content_url for fo in dataset.metadata.distribution} == {"a b.png", "notes.txt"}


def test_mappings() -> None:
    assert encoding_format("x/y.PARQUET") == "application/x-parquet"
    assert encoding_format("noext") == "application/octet-stream"
    assert croissant_data_type("int32") == "sc:Integer"
    assert croissant_data_type("double") == "sc:Float"
    assert croissant_data_type("timestamp[ns]") == "sc:DateTime"
    assert croissant_data_type("bool") == "sc:Boolean"
    assert croissant_data_type("whatever") == "sc:Text"


# mlcroissant's parquet reader calls DataFrame.reset_index(inplace=True), which pandas now
# deprecates; ignore exactly that message so the read itself is still checked.
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index:Warning")
def test_parquet_record_set_reads_through_mlcroissant(
    tmp_path: Path, manifest_of: ManifestOf
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "pq"
    root.mkdir()
    table = pa.table({"n": pa.array([1, 2, 3], pa.int64()), "s": ["x", "y", "z"]})
    pq.write_table(table, root / "t.parquet")
    report = DetectionReport(
        parts=[FormatReport("parquet", "t.parquet", 3, {"n": "int64", "s": "string"})]
    )
    out = root / "croissant.json"
    write_croissant(META, manifest_of(root), report, out)
    rows = list(_load(out).records(record_set="records/t.parquet"))
    assert [(r["records/t.parquet/n"], r["records/t.parquet/s"]) for r in rows] == [
        (1, b"x"),
        (2, b"y"),
        (3, b"z"),
    ]


def test_license_urls() -> None:
    from app.manifest.croissant import license_url

    assert license_url("CC-BY-4.0") == "https://spdx.org/licenses/CC-BY-4.0.html"
    assert license_url("https://example.org/terms") == "https://example.org/terms"
    assert license_url("NOASSERTION") == "NOASSERTION"
