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


# The system tools tests need, with the Debian package that provides each (.ci/run installs
# them all). Missing locally, their tests are skipped and named at the end of the run.
TOOL_PACKAGES = {
    "appstreamcli": "appstream",
    "dbus-run-session": "dbus-daemon",
    "gnome-keyring-daemon": "gnome-keyring",
    "go": "golang-go",
    "node": "nodejs",
    "npm": "npm",
    "dpkg-shlibdeps": "dpkg-dev",
    "lintian": "lintian",
    "makensis": "nsis",
    "mmdebstrap": "mmdebstrap",
}
# Skip reasons raised elsewhere (tests/registry/conftest.py), with what installs the part.
OTHER_INSTALL_HINTS = {
    "PostgreSQL server binaries not installed": (
        "sudo apt-get install postgresql-15 (Debian 12: postgresql); "
        "another version: PG_BIN=/usr/lib/postgresql/<N>/bin"
    ),
    # tests/unit/tlog: the Go reference implementation of signed notes and tiled logs
    "golang.org/x/mod sources not installed": "sudo apt-get install golang-golang-x-mod-dev",
}


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


def _install_hint(reason: str) -> str | None:
    tool = reason.removesuffix(" not installed")
    if tool != reason and tool in TOOL_PACKAGES:
        return f"sudo apt-get install {TOOL_PACKAGES[tool]}"
    return OTHER_INSTALL_HINTS.get(reason)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after the -ra short summary
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """End the run with a loud list of what was skipped and how to install it: a skipped
    test proved nothing, and a line in the -ra summary is easy to miss."""
    yield
    _skip_notice(terminalreporter)


def _skip_notice(terminalreporter: pytest.TerminalReporter) -> None:
    counts: dict[str, int] = {}
    files: dict[str, set[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reason = str(longrepr[2]).removeprefix("Skipped: ")
            counts[reason] = counts.get(reason, 0) + 1
            files.setdefault(reason, set()).add(report.nodeid.split("::")[0])
    if not counts:
        return
    total = sum(counts.values())
    terminalreporter.write_sep(
        "!",
        f"{total} TEST{'S' if total > 1 else ''} SKIPPED: NOT TESTED ON THIS MACHINE",
        red=True,
        bold=True,
    )
    for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        terminalreporter.write_line(f"{n:5} skipped: {reason}", red=True, bold=True)
        shown = sorted(files[reason])
        more = f" and {len(shown) - 3} more files" if len(shown) > 3 else ""
        terminalreporter.write_line(f"       in {', '.join(shown[:3])}{more}")
        hint = _install_hint(reason)
        if hint is not None:
            terminalreporter.write_line(f"       install: {hint}")
    terminalreporter.write_line(
        "What these tests check is unproven here. With CI=true (as .ci/run sets it) a missing "
        "PostgreSQL, keyring or tool fails the run instead of skipping.",
        bold=True,
    )
    terminalreporter.write_sep("!", red=True, bold=True)


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
