"""Wrap the Linux folder bundle in a Debian package: contributor-desk_<version>_<arch>.deb.

Layout: the bundle under /opt/contributor-desk, a launcher /usr/bin/contributor-desk, the
.desktop entry, hicolor icons and the AppStream metainfo from resources/. `Depends` comes
from dpkg-shlibdeps over every ELF file of the bundle, so it names exactly the system
libraries the bundle links but does not carry. Usage (or `make deb`):
    python packaging/linux/build_deb.py dist/contributor-desk --out dist
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"
PACKAGE = "contributor-desk"
PREFIX = Path("opt") / PACKAGE
APP_ID = "dev.contributor_desk.ContributorDesk"
MAINTAINER = "Contributor Desk maintainers <maintainers@contributor-desk.dev>"
# Loaded at run time (dlopen), so dpkg-shlibdeps cannot see them from the ELF headers.
RUNTIME_DEPENDS = ["libegl1", "libgl1", "fonts-dejavu-core | fonts-freefont-ttf"]
DESCRIPTION = """\
Catalogue, sign and upload the data you contribute to AI
 Contributor Desk keeps a local catalogue of the datasets and annotation sets
 you prepare, signs each contribution with your own key, uploads it to a
 registry (resumably), and shows which models used your data and what it
 earned you."""
LAUNCHER = f"""#!/bin/sh
exec /{PREFIX}/{PACKAGE} "$@"
"""
# The bundle is a self-contained application in /opt: the policy checks below are about
# distribution-built packages and do not apply to it.
LINTIAN_OVERRIDES = """\
# A self-contained application bundle installs under /opt by design.
dir-or-file-in-opt
# Python, Qt and the wheels' own libraries travel as private shared libraries inside the bundle.
embedded-library
# They find each other through RUNPATH $ORIGIN, as PyInstaller and the wheels lay them out.
custom-library-search-path
# CPython extension modules take libc's symbols from the interpreter that loads them.
library-not-linked-against-libc
"""


def version() -> str:
    text = (ROOT / "app" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__ = "([^"]+)"', text)
    assert match, "app/__init__.py has no __version__"
    return match.group(1)


def architecture() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def shlib_depends(bundle: Path) -> list[str]:
    """Depends of the bundle's ELF files on system libraries (dpkg-shlibdeps)."""
    elves = sorted(p for p in bundle.rglob("*") if _is_elf(p))
    lib_dirs = sorted({str(p.parent) for p in elves})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "debian").mkdir()
        (Path(tmp) / "debian" / "control").write_text(
            f"Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n", encoding="utf-8"
        )
        proc = subprocess.run(
            [
                "dpkg-shlibdeps", "-O", "--ignore-missing-info", "--warnings=0",
                *(f"-l{d}" for d in lib_dirs), *map(str, elves),
            ],
            capture_output=True, text=True, cwd=tmp, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"dpkg-shlibdeps failed:\n{proc.stderr[-3000:]}")
    match = re.search(r"shlibs:Depends=(.*)", proc.stdout)
    return [d.strip() for d in match.group(1).split(",")] if match else []


def _install(src: Path, dest: Path, mode: int = 0o644) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def stage(bundle: Path, root: Path, ver: str) -> None:
    shutil.copytree(bundle, root / PREFIX, symlinks=True)
    for path in (root / PREFIX).rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o644)  # shared libraries and data: only the executable is run
    (root / PREFIX / PACKAGE).chmod(0o755)
    launcher = root / "usr" / "bin" / PACKAGE
    launcher.parent.mkdir(parents=True)
    launcher.write_text(LAUNCHER, encoding="utf-8")
    launcher.chmod(0o755)
    share = root / "usr" / "share"
    _install(RESOURCES / f"{PACKAGE}.desktop", share / "applications" / f"{PACKAGE}.desktop")
    _install(RESOURCES / f"{APP_ID}.metainfo.xml", share / "metainfo" / f"{APP_ID}.metainfo.xml")
    _install(
        RESOURCES / "icons" / "app.svg",
        share / "icons" / "hicolor" / "scalable" / "apps" / f"{PACKAGE}.svg",
    )
    for png in sorted((RESOURCES / "icons" / "png").glob(f"{PACKAGE}-*.png")):
        size = png.stem.rsplit("-", 1)[1]
        _install(png, share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{PACKAGE}.png")
    doc = share / "doc" / PACKAGE
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {PACKAGE}\n\n"
        "Files: *\nCopyright: 2026 Contributor Desk authors\nLicense: Apache-2.0\n"
        " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n"
        " The bundled components and their licenses are listed in Help > About, from\n"
        f" /{PREFIX}/_internal/resources/bundled-licenses.json.\n",
        encoding="utf-8",
    )
    changelog = (
        f"{PACKAGE} ({ver}) unstable; urgency=medium\n\n"
        "  * Release built from the PyInstaller bundle.\n\n"
        f" -- {MAINTAINER}  {formatdate(usegmt=False, localtime=False)}\n"
    )
    (doc / "changelog.gz").write_bytes(gzip.compress(changelog.encode(), mtime=0))
    overrides = share / "lintian" / "overrides" / PACKAGE
    overrides.parent.mkdir(parents=True)
    overrides.write_text(LINTIAN_OVERRIDES, encoding="utf-8")


def control(root: Path, ver: str, arch: str, depends: list[str]) -> str:
    size_kb = sum((p.lstat().st_size + 1023) // 1024 for p in root.rglob("*") if not p.is_dir())
    return (
        f"Package: {PACKAGE}\nVersion: {ver}\nArchitecture: {arch}\n"
        f"Maintainer: {MAINTAINER}\nInstalled-Size: {size_kb}\n"
        f"Depends: {', '.join(depends)}\nSection: science\nPriority: optional\n"
        f"Homepage: https://github.com/contributor-desk/contributor-desk\n"
        f"Description: {DESCRIPTION}\n"
    )


def build(bundle: Path, out: Path, compression: str = "xz") -> Path:
    if not (bundle / PACKAGE).is_file():
        raise SystemExit(f"{bundle} is not a built bundle (run `make package` first)")
    ver, arch = version(), architecture()
    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{PACKAGE}_{ver}_{arch}.deb"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        stage(bundle, root, ver)
        depends = sorted(set(shlib_depends(root / PREFIX)) | set(RUNTIME_DEPENDS))
        (root / "DEBIAN").mkdir(mode=0o755)
        (root / "DEBIAN" / "control").write_text(
            control(root, ver, arch, depends), encoding="utf-8"
        )
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(deb)],
            check=True, capture_output=True,
        )  # fmt: skip
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--out", type=Path, default=Path("dist"))
    parser.add_argument(
        "--compression", choices=["xz", "gzip", "none"], default="xz",
        help="xz is the smallest; gzip builds several times faster (tests)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    deb = build(args.bundle, args.out, args.compression)
    print(f"{deb}: {deb.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
