"""What can be checked here of the Windows/macOS release path: the workflow passes actionlint,
and the NSIS installer script compiles with makensis (the Linux bundle as stand-in payload)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import app
from tests.packaging.conftest import ROOT, need_tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    local = Path(sys.executable).parent / "actionlint"  # the dev extra's wheel
    return str(local) if local.is_file() else need_tool("actionlint")


def test_the_release_workflow_passes_actionlint() -> None:
    assert ROOT / ".github" / "workflows" / "release.yml" in WORKFLOWS
    proc = subprocess.run(
        [_actionlint(), "-no-color", *map(str, WORKFLOWS)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-22.04\n"
        "    steps:\n      - run: echo ${{ matrix.nope }}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [_actionlint(), "-no-color", str(broken)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0 and "matrix" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_nsis_installer_script_compiles_against_the_bundle(
    bundle_dir: Path, tmp_path: Path
) -> None:
    makensis = need_tool("makensis")
    out = tmp_path / f"ContributorDesk-{app.__version__}-setup.exe"
    proc = subprocess.run(
        [
            makensis, "-V2", "-DNOCOMPRESS", f"-DVERSION={app.__version__}",
            f"-DBUNDLE={bundle_dir}", f"-DOUTFILE={out}",
            str(ROOT / "packaging" / "windows" / "contributor-desk.nsi"),
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert out.stat().st_size > 50_000_000  # the whole bundle is in the installer
    assert out.read_bytes()[:2] == b"MZ"


def test_the_release_workflow_builds_tests_and_packages_every_os() -> None:
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text("utf-8"))
    build = flow["jobs"]["build"]
    oses = build["strategy"]["matrix"]["os"]
    assert {o.split("-")[0] for o in oses} == {"ubuntu", "windows", "macos"}
    steps = {s.get("name", ""): s for s in build["steps"]}
    runs = "\n".join(str(s.get("run", "")) for s in build["steps"])
    for system in ("Linux", "Windows", "macOS"):
        step = steps[f"Frozen self-test ({system})"]
        assert "--self-test" in step["run"] and system in step["if"].replace("runner.os", "")
    assert ".ci/run" in runs and "python -m pytest" in runs  # the whole suite, every OS
    assert "makensis" in runs and "packaging\\windows\\contributor-desk.nsi" in runs
    assert "hdiutil create" in runs and "build_deb.py" in runs
    release = "\n".join(str(s.get("run", "")) for s in flow["jobs"]["release"]["steps"])
    assert "sha256sum" in release and "gh release upload" in release
