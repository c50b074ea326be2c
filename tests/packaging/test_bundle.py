"""The PyInstaller bundle (packaging/contributor-desk.spec) is built and run like an installed
app: version, a CLI round trip in an isolated data folder, and the GUI self-test (main window,
import, signing, submission to the bundle's own embedded registry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import app
from tests.packaging.conftest import EXE_NAME

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path) -> Path:
    return bundle_dir / EXE_NAME


def _run(
    exe: Path,
    *args: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> Any:
    full = {**os.environ, "CONTRIBUTOR_DESK_DATA_DIR": str(data_dir), **(env or {})}
    for name in drop:
        full.pop(name, None)
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=300, env=full, cwd=data_dir
    )


def test_the_bundle_runs_the_cli_and_the_gui_self_test(
    bundle: Path, tmp_path: Path, fixtures_dir: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    version = _run(bundle, "--version", data_dir=data)
    assert version.returncode == 0 and version.stdout.split()[-1] == app.__version__

    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "readings.csv").write_text("station,pm25\nA,12\nB,7\n", encoding="utf-8")
    added = _run(bundle, "add", str(folder), "--license", "CC-BY-4.0", data_dir=data)
    assert added.returncode == 0, added.stderr
    listed = _run(bundle, "list", "--json", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    (item,) = json.loads(listed.stdout)
    assert item["format"] == "csv" and item["recordCount"] == 2
    # Parquet footers and Arrow IPC streams are read without pyarrow, which the bundle lacks.
    for name in ("parquet", "hf_save_to_disk"):
        shutil.copytree(fixtures_dir / "formats" / name, tmp_path / name)
        added = _run(bundle, "add", str(tmp_path / name), "--license", "MIT", data_dir=data)
        assert added.returncode == 0, added.stderr
    listed = _run(bundle, "list", "--json", data_dir=data)
    counts = {i["format"]: i["recordCount"] for i in json.loads(listed.stdout)}
    assert counts == {"csv": 2, "parquet": 442, "hf-save-to-disk": 20}
    # Alembic's migrations travel as files in the bundle: the catalogue is at the newest one.
    offline = _run(bundle, "--registry", "http://127.0.0.1:9", "rewards", data_dir=data)
    assert offline.returncode != 0 and "no identity yet" in offline.stderr

    env = {"QT_QPA_PLATFORM": "offscreen"}
    selftest = _run(bundle, "--self-test", data_dir=data, env=env)
    assert selftest.returncode == 0, selftest.stdout[-2000:] + selftest.stderr[-2000:]
    assert "accepted by the registry" in selftest.stdout


def test_the_bundle_without_a_display_or_a_keyring_says_so_and_the_cli_works(
    bundle: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    no_display = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    gui = _run(bundle, data_dir=data, drop=no_display)
    assert gui.returncode == 2, gui.stderr[-2000:]
    assert "the window cannot open: no graphical display" in gui.stderr
    assert "qt.qpa" not in gui.stderr  # Qt was never asked
    assert _run(bundle, "list", data_dir=data, drop=no_display).returncode == 0

    # No Secret Service reachable: the key is not stored in a plaintext or failing backend.
    no_keyring = {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent", "HOME": str(tmp_path)}
    refused = _run(bundle, "identity", "init", data_dir=data, env=no_keyring,
                   drop=("CONTRIBUTOR_DESK_PASSPHRASE", "PYTHON_KEYRING_BACKEND"))  # fmt: skip
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "no secure keyring" in refused.stderr and "passphrase" in refused.stderr
    encrypted = _run(bundle, "identity", "init", data_dir=data,
                     env={**no_keyring, "CONTRIBUTOR_DESK_PASSPHRASE": "a long test passphrase"},
                     drop=("PYTHON_KEYRING_BACKEND",))  # fmt: skip
    assert encrypted.returncode == 0, encrypted.stderr[-2000:]
