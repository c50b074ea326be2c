"""The .deb on a clean Debian system: a minimal root made by mmdebstrap, the package installed
with `apt-get install ./…deb` (apt resolves every dependency), the installed app's GUI
self-test offscreen and a CLI round trip as an ordinary user, then `apt-get purge`, after
which nothing of the package is left outside that user's data folder.

The base root (a tarball of `mmdebstrap --variant=apt`) is cached under
$XDG_CACHE_HOME/contributor-desk-tests for a week; a fresh machine builds it (about a minute).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.packaging.conftest import need_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

CACHE_MAX_AGE_S = 7 * 24 * 3600
# Written by apt, dpkg and the shell, not by the package: excluded from the before/after diff.
VOLATILE = (
    "proc",
    "sys",
    "dev",
    "run",
    "tmp",
    "var/log",
    "var/cache",
    "var/lib/apt",
    "var/lib/dpkg",
)
USER = "tester"
DATA = f"/home/{USER}/.local/share/contributor-desk"


def _suite() -> str:
    for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    pytest.skip("not a Debian-like host (no VERSION_CODENAME in /etc/os-release)")


def _base_tarball(mmdebstrap: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tarball = cache / "contributor-desk-tests" / f"{_suite()}-apt.tar"
    if tarball.is_file() and time.time() - tarball.stat().st_mtime < CACHE_MAX_AGE_S:
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    # No mirror given: mmdebstrap uses the host's apt sources (the only reachable archive).
    proc = subprocess.run(
        [mmdebstrap, "--quiet", "--variant=apt", "--mode=root", "--include=passwd",
         _suite(), str(partial)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    partial.replace(tarball)
    return tarball


def _files(root: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirs, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in VOLATILE]
        found.update(os.path.normpath(os.path.join(rel, n)) for n in [*names, *dirs])
    return found


def _in_root(root: Path, script: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """`script` run by sh inside `root`, with /dev, /proc and /sys mounted in a private mount
    namespace (they disappear with it, whatever happens)."""
    r = shlex.quote(str(root))
    outer = (
        f"mount --rbind /dev {r}/dev && mount -t proc proc {r}/proc && "
        f"mount -t sysfs sysfs {r}/sys && exec chroot {r} /bin/sh -ec {shlex.quote(script)}"
    )
    return subprocess.run(
        ["unshare", "--mount", "--fork", "--propagation", "private", "/bin/sh", "-c", outer],
        capture_output=True, text=True, timeout=timeout,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + "\n" + proc.stderr[-3000:]
    return proc.stdout


def test_the_deb_installs_runs_and_purges_cleanly_on_a_minimal_debian(
    deb_file: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the clean-system test needs root (chroot, mounts) in CI")
        pytest.skip("the clean-system test needs root (chroot, mounts)")
    need_tool("unshare")
    tarball = _base_tarball(need_tool("mmdebstrap"))
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(root)], check=True, timeout=300)
    shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
    shutil.copyfile(deb_file, root / "tmp" / deb_file.name)
    _ok(_in_root(root, f"useradd --create-home {USER}"))
    before = _files(root)

    _ok(_in_root(root, (
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
        f"apt-get install -y -qq --no-install-recommends ./tmp/{deb_file.name}"
    )))  # fmt: skip
    installed = _files(root)
    assert {"opt/contributor-desk/contributor-desk", "usr/bin/contributor-desk"} <= installed

    run_as = f"runuser -u {USER} -- env HOME=/home/{USER} QT_QPA_PLATFORM=offscreen"
    out = _ok(_in_root(root, (
        "mkdir -p /tmp/table && printf 'station,pm25\\nA,12\\nB,7\\n' > /tmp/table/readings.csv"
        " && chmod -R a+rX /tmp/table"
        f" && {run_as} contributor-desk --version"
        f" && {run_as} contributor-desk add /tmp/table --license CC-BY-4.0"
        f" && {run_as} contributor-desk list --json"
        f" && {run_as} contributor-desk --self-test"
    )))  # fmt: skip
    assert '"recordCount": 2' in out or '"recordCount":2' in out, out[-3000:]
    assert "accepted by the registry" in out, out[-3000:]
    assert (root / DATA.lstrip("/")).is_dir(), "the app wrote its data elsewhere"

    _ok(_in_root(root, "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq contributor-desk"))
    after = _files(root)
    contents = subprocess.run(
        ["dpkg-deb", "--contents", str(deb_file)], capture_output=True, text=True, check=True
    ).stdout
    ours = {
        line.split(maxsplit=5)[5].split(" -> ")[0].removeprefix("./").rstrip("/")
        for line in contents.splitlines()
        if not line.startswith("d")
    }
    assert ours <= installed - before
    left_of_ours = sorted(ours & after)
    assert not left_of_ours, left_of_ours[:20]
    home = f"home/{USER}/"
    new_elsewhere = sorted(p for p in after - installed if not p.startswith(home))
    assert not new_elsewhere, new_elsewhere[:20]
    assert not (root / "opt" / "contributor-desk").exists()
