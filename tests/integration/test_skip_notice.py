"""A run that skips tests for a missing PostgreSQL or system tool says so loudly at the end,
with how to install it; with CI=true the same tests fail instead of skipping.

Runs pytest itself, on two real test files, with PostgreSQL and node/npm made unfindable
(PG_BIN pointing nowhere, an empty PATH).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cli_helpers import ROOT

TARGETS = [
    "tests/registry/test_migrations.py",
    "tests/integration/test_interop.py",
    "-k",
    "postgres or node_reference_server",
]
NOTICE = "SKIPPED: NOT TESTED ON THIS MACHINE"


def _pytest(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PG_BIN=str(tmp_path / "no-postgres"), PATH=str(empty), PYTHONPATH=str(ROOT))
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *TARGETS],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=240,
    )


@pytest.mark.slow
def test_skipped_requirements_are_named_loudly_at_the_end(tmp_path: Path) -> None:
    run = _pytest(tmp_path, ci=False)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert NOTICE in out
    # after the -ra short summary, so it is the last thing before the totals
    assert out.index(NOTICE) > out.index("short test summary info")
    notice = out[out.index(NOTICE) :]
    assert re.search(r"!! \d+ TESTS SKIPPED: NOT TESTED", out)
    assert re.search(r"\d+ skipped: PostgreSQL server binaries not installed\n", notice)
    assert "in tests/registry/test_migrations.py\n" in notice
    assert "install: sudo apt-get install postgresql-15" in notice
    assert "    2 skipped: node not installed\n" in notice
    assert "in tests/integration/test_interop.py\n" in notice
    assert "install: sudo apt-get install nodejs\n" in notice
    assert re.search(r"\n\d+ skipped, \d+ deselected in ", notice)


@pytest.mark.slow
def test_the_same_requirements_fail_under_ci(tmp_path: Path) -> None:
    run = _pytest(tmp_path, ci=True)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert NOTICE not in out
    assert "initdb is required in CI (.ci/run must install postgresql)" in out
    assert "node is required in CI (.ci/run must install it)" in out
    assert not re.search(r"\d+ skipped", out)
