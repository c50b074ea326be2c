"""Size report of a built bundle: the total, the ten largest parts, and the compressed archive.

`make package` runs it after PyInstaller. A part is one entry of the bundle's `_internal`
folder (a package such as `PySide6` or a shared library); symbolic links count nothing.
Usage: python packaging/sizes.py dist/contributor-desk [--archive dist/name.tar.gz]
"""

from __future__ import annotations

import argparse
import os
import tarfile
from pathlib import Path

MB = 1_000_000


def tree_size(path: Path) -> int:
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            file = Path(dirpath, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def parts(bundle: Path) -> list[tuple[int, str]]:
    inner = bundle / "_internal"
    found = [(tree_size(p), p.name) for p in inner.iterdir()] if inner.is_dir() else []
    found += [(tree_size(p), p.name) for p in bundle.iterdir() if p.name != "_internal"]
    return sorted(found, reverse=True)


def make_archive(bundle: Path, archive: Path) -> int:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz", compresslevel=9) as tar:
        tar.add(bundle, arcname=bundle.name)
    return archive.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--archive", type=Path)
    args = parser.parse_args(argv)
    total = tree_size(args.bundle)
    print(f"{args.bundle}: {total / MB:.1f} MB unpacked")
    print("ten largest parts:")
    for size, name in parts(args.bundle)[:10]:
        print(f"  {size / MB:8.1f} MB  {name}")
    if args.archive:
        print(f"{args.archive}: {make_archive(args.bundle, args.archive) / MB:.1f} MB compressed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
