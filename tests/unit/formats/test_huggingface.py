"""Hugging Face datasets: save_to_disk folders and Hub repo layouts written by `datasets`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from app.formats import detect

from .helpers import by_format, messages

CopyFn = Callable[[str], Path]
LINNERUD = {"Chins": "float", "Situps": "float", "Jumps": "float"}


def test_save_to_disk_sample(samples: Path) -> None:
    report = detect(samples / "hf_save_to_disk")
    assert [p.format for p in report.parts] == ["hf-save-to-disk"]
    part = report.parts[0]
    assert part.record_count == 20
    assert part.schema == LINNERUD
    assert part.details["features"] == {"Chins": "float64", "Situps": "float64", "Jumps": "float64"}
    assert part.problems == []


def test_save_to_disk_dataset_dict(samples: Path, tmp_path: Path) -> None:
    root = tmp_path / "dd"
    for split in ("train", "test"):
        shutil.copytree(samples / "hf_save_to_disk", root / split)
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    report = detect(root)
    part = by_format(report, "hf-save-to-disk")
    assert part.path == "."
    assert part.record_count == 40
    assert part.details["splits"] == {"test": 20, "train": 20}
    assert len(report.parts) == 1


def test_truncated_arrow_stream(sample_copy: CopyFn) -> None:
    root = sample_copy("hf_save_to_disk")
    arrow = root / "data-00000-of-00001.arrow"
    raw = arrow.read_bytes()
    arrow.write_bytes(raw[: len(raw) // 2])
    part = by_format(detect(root), "hf-save-to-disk")
    assert part.record_count is None
    assert "not a readable Arrow stream" in messages(part.problems)


def test_missing_arrow_file(sample_copy: CopyFn) -> None:
    root = sample_copy("hf_save_to_disk")
    (root / "data-00000-of-00001.arrow").unlink()
    part = by_format(detect(root), "hf-save-to-disk")
    assert "listed in state.json but missing" in messages(part.problems)


def test_hub_sample(samples: Path) -> None:
    report = detect(samples / "hf_hub")
    assert [p.format for p in report.parts] == ["hf-hub"]
    part = report.parts[0]
    assert part.record_count == 20
    assert part.schema == LINNERUD
    assert part.details["splits"] == {"train": 20}
    assert part.details["license"] == "bsd-3-clause"


def test_hub_shards_without_card(tmp_path: Path) -> None:
    data = tmp_path / "repo" / "data"
    data.mkdir(parents=True)
    for split, n in (("train", 3), ("test", 2)):
        for shard in range(2):
            table = pa.table({"x": list(range(n)), "y": ["a"] * n})
            pq.write_table(table, data / f"{split}-0000{shard}-of-00002.parquet")
    part = by_format(detect(tmp_path / "repo"), "hf-hub")
    assert part.record_count == 10
    assert part.details["splits"] == {"test": 4, "train": 6}
    assert part.schema == {"x": "int", "y": "string"}


def test_parquet_in_data_folder_without_hub_signs_is_plain(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({"x": [1]}), data / "my table.parquet")
    report = detect(tmp_path)
    assert [(p.format, p.path) for p in report.parts] == [("parquet", "data/my table.parquet")]
