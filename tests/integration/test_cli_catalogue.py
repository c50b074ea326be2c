"""`contributor-desk add/list/show/export` end to end, including every bad-input case."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from tests.integration.cli_helpers import ROOT, run_cli

FIXTURES = ROOT / "tests" / "fixtures" / "formats"


def _csv(path: Path, rows: int = 10) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name", "score"])
        for i in range(rows):
            w.writerow([i, f"n{i}", i / 2])
    return path


def _count(data_dir: Path) -> int:
    result = run_cli("list", "--json", data_dir=data_dir)
    assert result.code == 0, result.err
    return len(result.json())


def test_add_list_show_round_trip(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "my data"
    folder.mkdir()
    _csv(folder / "table.csv", rows=25)
    r = run_cli("add", folder, "--license", "CC-BY-4.0", "--json", data_dir=data_dir)
    assert r.code == 0, r.err
    added = r.json()
    assert added["format"] == "csv"
    assert added["recordCount"] == 25
    assert added["fileCount"] == 1
    assert added["state"] == "draft"
    assert added["license"] == "CC-BY-4.0"
    assert len(added["manifestRoot"]) == 64
    assert added["history"][0]["event"] == "added"
    listed = run_cli("list", "--json", data_dir=data_dir).json()
    assert [i["id"] for i in listed] == [added["id"]]
    shown = run_cli("show", str(added["id"]), data_dir=data_dir)
    assert shown.code == 0
    assert "My data" in shown.out and "csv" in shown.out
    human = run_cli("list", data_dir=data_dir)
    assert "My data" in human.out


@pytest.mark.parametrize(
    ("sample", "fmt", "records"),
    [
        ("csv", "csv", 442),
        ("parquet", "parquet", 442),
        ("coco", "coco", None),
        ("voc", "voc", None),
        ("yolo_ultralytics", "yolo-ultralytics", None),
        ("yolo_darknet", "yolo-darknet", None),
        ("hf_save_to_disk", "hf-save-to-disk", None),
        ("hf_hub", "hf-hub", None),
        ("label_studio", "label-studio", None),
    ],
)
def test_real_public_formats_are_recognised(
    sample: str, fmt: str, records: int | None, data_dir: Path
) -> None:
    path = FIXTURES / sample
    if not path.exists():
        pytest.fail(f"fixture {path} missing")
    r = run_cli("add", path, "--json", data_dir=data_dir)
    assert r.code == 0, r.err
    got = r.json()
    assert got["format"] == fmt, got["report"]
    if records is not None:
        assert got["recordCount"] == records


def test_missing_path_is_bad_input(tmp_path: Path, data_dir: Path) -> None:
    r = run_cli("add", tmp_path / "nope", data_dir=data_dir)
    assert r.code == 3
    assert r.err.startswith("error: ")
    assert "does not exist" in r.err
    assert "Traceback" not in r.err


def test_empty_folder_is_bad_input(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = run_cli("add", tmp_path / "empty", data_dir=data_dir)
    assert r.code == 3
    assert "folder is empty: there are no files to add" in r.err
    assert _count(data_dir) == 0


def test_same_folder_twice_is_refused_and_first_is_kept(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    _csv(folder / "a.csv")
    first = run_cli("add", folder, "--json", data_dir=data_dir)
    assert first.code == 0, first.err
    again = run_cli("add", folder, data_dir=data_dir)
    assert again.code == 3
    assert f"#{first.json()['id']}" in again.err
    assert _count(data_dir) == 1


def test_corrupt_and_ragged_files_are_catalogued_with_problems(
    tmp_path: Path, data_dir: Path
) -> None:
    folder = tmp_path / "messy"
    folder.mkdir()
    (folder / "broken.json").write_text('{"a": [1, 2, ')
    (folder / "ragged.csv").write_bytes(b"a,b,c\n1,2,3\n4,5\n6,7,8,9\ncaf\xe9,1,2\n")
    (folder / "empty.txt").write_bytes(b"")
    r = run_cli("add", folder, "--json", data_dir=data_dir)
    assert r.code == 0, r.err
    got = r.json()
    problems = [p for part in got["report"]["parts"] for p in part["problems"]]
    problems += got["report"]["problems"] + got["problems"]
    text = json.dumps(problems)
    assert "broken.json" in text
    assert "ragged.csv" in text
    assert got["fileCount"] == 3


def test_truncated_parquet_is_reported(tmp_path: Path, data_dir: Path) -> None:
    src = FIXTURES / "parquet" / "diabetes.parquet"
    folder = tmp_path / "pq"
    folder.mkdir()
    data = src.read_bytes()
    (folder / "cut.parquet").write_bytes(data[: len(data) // 2])
    r = run_cli("add", folder, "--json", data_dir=data_dir)
    assert r.code == 0, r.err
    text = json.dumps(r.json()["report"])
    assert "cut.parquet" in text and '"error"' in text


def test_odd_names_work_and_are_nfc(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    nfd = unicodedata.normalize("NFD", "café ü.csv")
    _csv(folder / nfd)
    (folder / "sp ace s.txt").write_text("y")
    r = run_cli("add", folder, "--json", data_dir=data_dir)
    assert r.code == 0, r.err
    paths = {f["path"] for f in r.json()["files"]}
    assert unicodedata.normalize("NFC", "café ü.csv") in paths
    assert "sp ace s.txt" in paths


@pytest.mark.parametrize("name", ["with\nnewline.txt", "tab\there.txt", "esc\x1b[31m.txt"])
def test_control_character_in_a_name_is_refused_clearly(
    tmp_path: Path, data_dir: Path, name: str
) -> None:
    """Manifest paths cannot hold control characters (a newline would make the root
    ambiguous): the file is named, nothing is added."""
    folder = tmp_path / "ctrl"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    (folder / name).write_text("x")
    r = run_cli("add", folder, data_dir=data_dir)
    assert r.code == 3, r.err
    assert r.err.startswith("error: cannot add: "), r.err
    assert "control character" in r.err
    assert _count(data_dir) == 0


def test_non_utf8_name_is_refused_clearly(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "bytes"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    with open(os.fsencode(folder) + b"/bad\xff.txt", "wb") as fh:
        fh.write(b"x")
    r = run_cli("add", folder, data_dir=data_dir)
    assert r.code == 3
    assert r.err.startswith("error: cannot add: bad\\xff.txt: ")
    assert "is not valid UTF-8" in r.err
    assert _count(data_dir) == 0


def test_symlink_loop_and_outside_link_are_not_followed(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "links"
    folder.mkdir()
    _csv(folder / "a.csv")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the dataset")
    (folder / "escape.txt").symlink_to(outside)
    r = run_cli("add", folder, "--json", data_dir=data_dir)
    assert r.code == 0, r.err
    got = r.json()
    assert {f["path"] for f in got["files"]} == {"a.csv"}
    text = json.dumps(got["problems"])
    assert "loop" in text and "escape.txt" in text


def test_unreadable_file_and_folder_are_bad_input(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    _csv(folder / "ok.csv")
    f = folder / "x.csv"
    _csv(f)
    f.chmod(0)
    r = run_cli("add", folder, data_dir=data_dir, obey_permissions=True)
    assert r.code == 3, r.err
    assert "x.csv" in r.err
    f.chmod(0o644)
    sub = folder / "private"
    sub.mkdir()
    (sub / "y.csv").write_text("a\n1\n")
    sub.chmod(0)
    try:
        r = run_cli("add", folder, data_dir=data_dir, obey_permissions=True)
    finally:
        sub.chmod(0o755)
    assert r.code == 3, r.err
    assert "private" in r.err
    assert _count(data_dir) == 0


def test_unknown_id_is_usage_error(data_dir: Path) -> None:
    r = run_cli("show", "999", data_dir=data_dir)
    assert r.code == 2
    assert "no item #999" in r.err


def test_exports_validate(tmp_path: Path, data_dir: Path) -> None:
    import bagit

    folder = tmp_path / "d"
    folder.mkdir()
    _csv(folder / "t.csv", rows=5)
    item = run_cli("add", folder, "--json", data_dir=data_dir).json()["id"]
    out = tmp_path / "c.json"
    r = run_cli("export", str(item), "--format", "croissant", "--out", out, data_dir=data_dir)
    assert r.code == 0, r.err
    doc = json.loads(out.read_text())
    assert doc["conformsTo"].startswith("http://mlcommons.org/croissant/1.")
    bag = tmp_path / "bag"
    r = run_cli("export", str(item), "--format", "bagit", "--out", bag, data_dir=data_dir)
    assert r.code == 0, r.err
    bagit.Bag(str(bag)).validate()


KILL_POINTS = [
    # (where add is held, whether the item must be there after kill -9)
    ("hashing", False),  # inside hash_files: nothing written yet
    ("db-write", False),  # every row written in the transaction, not committed
    ("committed", True),  # committed, add not yet returned
]


@pytest.mark.parametrize(("point", "item_kept"), KILL_POINTS)
def test_killing_add_leaves_a_valid_database(
    tmp_path: Path, data_dir: Path, point: str, item_kept: bool
) -> None:
    """kill -9 at a known point of `add`: either no trace of the item or the whole item."""
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(8):
        (folder / f"f{i:02}.bin").write_bytes(os.urandom(1024 * 1024))
    keep = tmp_path / "keep"
    keep.mkdir()
    _csv(keep / "k.csv")
    assert run_cli("add", keep, data_dir=data_dir).code == 0
    flag = tmp_path / "paused"
    env = dict(
        os.environ,
        CONTRIBUTOR_DESK_DATA_DIR=str(data_dir),
        PYTHONPATH=str(ROOT),
        CONTRIBUTOR_DESK_PAUSE_AT=f"{point}:{flag}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "add", str(folder)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    db = data_dir / "catalogue.sqlite3"
    try:
        deadline = time.monotonic() + 60
        while not (flag.exists() and flag.read_text() == str(proc.pid)):
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"add ended before {point}: {proc.stderr.read().decode()}")
            assert time.monotonic() < deadline, f"add never reached {point}"
            time.sleep(0.01)
        if point == "db-write":  # the rows are in the open transaction, not visible yet
            with sqlite3.connect(db) as peek:
                assert peek.execute("SELECT count(*) FROM items").fetchone()[0] == 1
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        titles = [r[0] for r in conn.execute("SELECT title FROM items ORDER BY id")]
        rows = {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE item_id IN "
                "(SELECT id FROM items WHERE title = 'Big')"
            ).fetchone()[0]
            for table in ("files", "manifests", "history")
        }
    finally:
        conn.close()
    if item_kept:
        assert titles == ["Keep", "Big"]
        assert rows == {"files": 8, "manifests": 1, "history": 1}
        again = run_cli("add", folder, data_dir=data_dir)
        assert again.code == 3 and "already in the catalogue" in again.err
    else:
        assert titles == ["Keep"]
        assert rows == {"files": 0, "manifests": 0, "history": 0}
        r = run_cli("add", folder, "--json", data_dir=data_dir)
        assert r.code == 0, r.err
        assert r.json()["fileCount"] == 8
    assert _count(data_dir) == 2


def test_list_json_matches_the_summary_shape(tmp_path: Path, data_dir: Path) -> None:
    from app.services.catalogue import CatalogueService
    from app.services.context import ServiceContext

    folder = tmp_path / "d"
    folder.mkdir()
    _csv(folder / "a.csv")
    assert run_cli("add", folder, data_dir=data_dir).code == 0
    ctx = ServiceContext(data_dir)
    try:
        service = CatalogueService(ctx)
        fast = service.list_json()
        slow = [i.to_json() for i in service.list_items()]
    finally:
        ctx.close()
    assert fast == slow
