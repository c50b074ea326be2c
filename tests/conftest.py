"""Fixtures shared by every suite: isolated data dir, keyring and environment per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import pytest

from tests.support.keyrings import ENV_DIR, FileTestKeyring

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def require_tool() -> Callable[[str], str]:
    """Return the path of a system tool; skip locally but FAIL in CI when it is missing."""

    def _require(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            if os.environ.get("CI"):
                pytest.fail(f"{name} is required in CI (.ci/run must install it)")
            pytest.skip(f"{name} not installed")
        return path

    return _require


@pytest.fixture
def isolated_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A per-test keyring in tmp_path, also seen by CLI subprocesses of this test."""
    folder = tmp_path / "keyring"
    folder.mkdir()
    monkeypatch.setenv(ENV_DIR, str(folder))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.support.keyrings.FileTestKeyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(FileTestKeyring())
    try:
        yield folder
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated data dir, also exported for CLI subprocesses."""
    d = tmp_path / "data"
    monkeypatch.setenv("CONTRIBUTOR_DESK_DATA_DIR", str(d))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return d
