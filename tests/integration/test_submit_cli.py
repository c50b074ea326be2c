"""`contributor-desk submit ID && contributor-desk upload --wait` ends accepted (real CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_helpers import run_cli
from tests.integration.faults.helpers import (
    assert_blobs_equal,
    random_bytes,
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

FILES = {"data/a.bin": random_bytes(300_000, 31), "data/b.csv": b"x,y\n1,2\n", "c.txt": b"c"}


def test_submit_and_upload_wait_from_the_command_line(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path, registry: RegistryProcess
) -> None:
    folder = tmp_path / "ds"
    for rel, data in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    url = ("--registry", registry.base_url)
    assert run_cli(*url, "identity", "init", data_dir=data_dir).code == 0
    assert run_cli(*url, "add", folder, "--title", "CLI set", data_dir=data_dir).code == 0
    sub = run_cli(*url, "submit", "1", "--json", data_dir=data_dir)
    assert sub.code == 0, sub.err
    assert sub.json()["state"] == "queued" and sub.json()["blobsToUpload"] == 3
    up = run_cli(*url, "upload", "--wait", data_dir=data_dir)
    assert up.code == 0, up.err
    assert "#1 CLI set: accepted" in up.out
    assert_blobs_equal(registry, FILES)
    q = run_cli(*url, "queue", "--json", data_dir=data_dir)
    (c,) = q.json()["contributions"]
    assert c["state"] == "accepted" and c["jobsDone"] == 3
    sync = run_cli(*url, "sync", data_dir=data_dir)
    assert sync.code == 0 and "Nothing to sync" in sync.out
    again = run_cli(*url, "submit", "1", data_dir=data_dir)
    assert again.code == 2 and "already accepted" in again.err


def test_submit_of_changed_files_exits_3_with_the_list(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path, registry: RegistryProcess
) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "a.txt").write_text("one")
    url = ("--registry", registry.base_url)
    run_cli(*url, "identity", "init", data_dir=data_dir)
    run_cli(*url, "add", folder, data_dir=data_dir)
    (folder / "a.txt").write_text("changed")
    res = run_cli(*url, "submit", "1", data_dir=data_dir)
    assert res.code == 3
    assert res.err.startswith("error: item #1 changed since it was added: a.txt (size 3 → 7)")
