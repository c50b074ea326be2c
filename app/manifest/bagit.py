"""BagIt (RFC 8493) export: a self-verifying copy of a contribution for archives and hand-over.

The payload manifest is written from the contribution's manifest rather than by re-hashing,
so the bag states exactly what was signed. The bag is built in a temporary folder next to
`out` and renamed into place, so a failure never leaves a half bag behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from app import __version__
from app.domain import portable
from app.domain.errors import BadInputError
from app.durable import fsync_dir, write_synced
from app.manifest.canonical import Manifest

BAGIT_VERSION = "1.0"
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RESERVED = {"Bagging-Date", "Payload-Oxum", "Bag-Software-Agent"}


def encode_manifest_path(path: str) -> str:
    """RFC 8493 §2.1.3: percent-encode exactly CR, LF and '%' in manifest file paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def write_bag(
    source_root: Path,
    manifest: Manifest,
    out: Path,
    info: dict[str, str],
    *,
    today: dt.date | None = None,
) -> None:
    """Write a bag of `manifest`'s files (read from `source_root`) at `out`.

    Payload files are hard-linked when `out` is on the same filesystem (instant, no extra
    space) and copied otherwise; the source is never modified, so treat a hard-linked bag as
    read-only. Raises BadInputError if `out` exists or a source file no longer matches.
    """
    out = Path(os.path.abspath(out))
    if out.exists() or out.is_symlink():
        raise BadInputError(f"{out} already exists", hint="choose a new folder name for the bag")
    if not out.parent.is_dir():
        raise BadInputError(f"{out.parent} does not exist", hint="create it or choose another")
    tags = _bag_info_lines(manifest, info, today or dt.date.today())
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bag is meant to be handed over
        data = tmp / "data"
        data.mkdir()
        for entry in manifest.files:
            src = source_root / entry.path
            try:
                size = os.stat(src).st_size
            except FileNotFoundError:
                raise BadInputError(
                    f"{entry.path} is missing from {source_root}",
                    hint="the contribution changed since it was added; add it again",
                ) from None
            if size != entry.size:
                raise BadInputError(
                    f"{entry.path} changed since it was added ({size} bytes, expected "
                    f"{entry.size})",
                    hint="add the contribution again",
                )
            dest = data / entry.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(src, dest)
        _write_text(
            tmp / "bagit.txt",
            f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n",
        )
        _write_text(
            tmp / "manifest-sha256.txt",
            "".join(f"{e.sha256}  data/{encode_manifest_path(e.path)}\n" for e in manifest.files),
        )
        _write_text(tmp / "bag-info.txt", tags)
        tag_lines = []
        for name in ("bag-info.txt", "bagit.txt", "manifest-sha256.txt"):
            digest = hashlib.sha256((tmp / name).read_bytes()).hexdigest()
            tag_lines.append(f"{digest}  {name}\n")
        _write_text(tmp / "tagmanifest-sha256.txt", "".join(tag_lines))
        fsync_dir(tmp)
        if out.exists():
            raise BadInputError(f"{out} already exists", hint="choose a new folder name")
        os.rename(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _bag_info_lines(manifest: Manifest, info: dict[str, str], today: dt.date) -> str:
    fields = [
        ("Bagging-Date", today.isoformat()),
        ("Payload-Oxum", f"{manifest.total_size}.{manifest.file_count}"),
        ("Bag-Software-Agent", f"contributor-desk {__version__}"),
    ]
    for label, value in info.items():
        if not _LABEL_RE.fullmatch(label) or label in _RESERVED:
            raise BadInputError(f"bag-info label {label!r} is not allowed")
        # A tag value is one line: a newline would start a new (bogus) tag.
        fields.append((label, " ".join(value.split())))
    return "".join(f"{k}: {v}\n" for k, v in fields)


def _link_or_copy(src: Path, dest: Path) -> None:
    portable.link_or_copy(src, dest)


def _write_text(path: Path, text: str) -> None:
    write_synced(path, text.encode("utf-8"))
