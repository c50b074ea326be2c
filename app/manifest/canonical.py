"""The canonical manifest: the exact bytes a contributor signs and the registry verifies.

Both sides import this one module, so "canonical" cannot drift between app and registry.
Parsing is strict on purpose: anything that would not re-serialise to the same bytes is
rejected with the precise reason, because a signature is over bytes, not over meaning.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.domain.errors import VerificationError
from app.domain.problems import Problem, Severity
from app.manifest.hashing import hash_files
from app.manifest.scan import CONTROL_CHARS, ScannedFile, scan_paths

SCHEMA = "contributor-desk/manifest/v1"
HASH_ALG = "sha256"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(value: object) -> bool:
    """64 lowercase hex digits: how every blob is named (in manifests, statements, the blob
    store and the upload protocol), so never a path trick."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


_TOP_KEYS = frozenset({"schema", "hashAlg", "files", "fileCount", "totalSize", "root"})
_FILE_KEYS = frozenset({"path", "size", "sha256"})


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str  # relative, POSIX, NFC
    size: int
    sha256: str  # lowercase hex


# Longest manifest path and path component, in UTF-8 bytes. Common file systems allow 255-byte
# names; the whole path stays well under what a database index row can hold (PostgreSQL's
# btree rows end near 2.7 KB), so every registry stores every valid manifest.
MAX_PATH_BYTES = 1024
MAX_NAME_BYTES = 255
# Control characters (CONTROL_CHARS: C0, DEL, C1): a newline would make the root's
# "<sha256> <size> <path>\n" lines ambiguous, and none belongs in a name people can read.
_CONTROL = CONTROL_CHARS


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a manifest path, or None if it can."""
    if not isinstance(path, str) or not path:
        return "path is empty"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "path is not valid UTF-8"
    if "\x00" in path:
        return "path contains a NUL character"
    control = _CONTROL.search(path)
    if control is not None:
        return f"path contains the control character U+{ord(control.group()):04X}"
    if len(encoded) > MAX_PATH_BYTES:
        return f"path is longer than {MAX_PATH_BYTES} bytes (UTF-8)"
    if "\\" in path:
        return "path contains a backslash (paths must use '/')"
    if path.startswith("/") or _DRIVE.match(path):
        return "path is absolute"
    parts = path.split("/")
    if "" in parts or "." in parts:
        return "path has an empty or '.' component"
    if ".." in parts:
        return "path contains '..'"
    if len(encoded) > MAX_NAME_BYTES and any(
        len(part.encode("utf-8")) > MAX_NAME_BYTES for part in parts
    ):
        return f"a path component is longer than {MAX_NAME_BYTES} bytes (UTF-8)"
    # is_normalized() answers from a quick check for most text, without building a copy.
    if not (path.isascii() or unicodedata.is_normalized("NFC", path)):
        return "path is not NFC-normalised"
    return None


_DRIVE = re.compile(r"[A-Za-z]:(/|$)")


def _utf8_key(path: str) -> bytes:
    return path.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Manifest:
    """Files sorted by the UTF-8 bytes of their path; build it with from_entries."""

    files: tuple[ManifestEntry, ...]
    # `root` once computed (hashes every entry; parse, signing and the registry all ask).
    _root: str | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_entries(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        """Sort and validate; raises VerificationError naming the first bad path."""
        files = tuple(sorted(entries, key=lambda e: _utf8_key(e.path)))
        _validate_entries(files)
        return cls(files)

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    @property
    def root(self) -> str:
        """sha256 over "<sha256> <size> <path>\\n" lines: one short value naming the content."""
        root = self._root
        if root is None:
            h = hashlib.sha256()
            for e in self.files:
                h.update(f"{e.sha256} {e.size} {e.path}\n".encode())
            root = h.hexdigest()
            object.__setattr__(self, "_root", root)
        return root

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "fileCount": self.file_count,
            "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in self.files],
            "hashAlg": HASH_ALG,
            "root": self.root,
            "schema": SCHEMA,
            "totalSize": self.total_size,
        }

    def canonical_bytes(self) -> bytes:
        return _dump(self.to_json_obj())

    def digest(self) -> str:
        """sha256 hex of canonical_bytes(): what the DSSE statement's subject names."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.files}

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Accept exactly the bytes canonical_bytes() would produce, nothing else."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerificationError(f"manifest is not valid UTF-8: {exc}") from None
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise VerificationError(f"manifest is not valid JSON: {exc}") from None
        try:
            return cls._from_json(obj, data)
        except VerificationError:
            # A duplicate key is the first thing to say about a bad manifest. Looked for only
            # now: with it, loads() would call back into Python for each of the 10,000s of
            # objects, and a manifest that passes is canonical, so it has none.
            json.loads(text, object_pairs_hook=_no_duplicate_keys)
            raise

    @classmethod
    def _from_json(cls, obj: Any, data: bytes) -> Manifest:
        if not isinstance(obj, dict):
            raise VerificationError("manifest is not a JSON object")
        keys = set(obj)
        if keys != _TOP_KEYS:
            missing, extra = sorted(_TOP_KEYS - keys), sorted(keys - _TOP_KEYS)
            raise VerificationError(f"manifest keys wrong: missing {missing}, unexpected {extra}")
        if obj["schema"] != SCHEMA:
            raise VerificationError(f"wrong schema {obj['schema']!r}, expected {SCHEMA!r}")
        if obj["hashAlg"] != HASH_ALG:
            raise VerificationError(f"wrong hashAlg {obj['hashAlg']!r}, expected {HASH_ALG!r}")
        if not isinstance(obj["files"], list):
            raise VerificationError("manifest 'files' is not a list")
        entries = [_parse_entry(i, f) for i, f in enumerate(obj["files"])]
        manifest = cls(tuple(entries))
        if [_utf8_key(e.path) for e in entries] != sorted(_utf8_key(e.path) for e in entries):
            raise VerificationError("manifest is not canonical: files not sorted by UTF-8 path")
        _validate_entries(manifest.files, fields_checked=True)
        if not _is_int(obj["fileCount"]) or obj["fileCount"] != manifest.file_count:
            raise VerificationError(
                f"fileCount mismatch: says {obj['fileCount']!r}, lists {manifest.file_count}"
            )
        if not _is_int(obj["totalSize"]) or obj["totalSize"] != manifest.total_size:
            raise VerificationError(
                f"totalSize mismatch: says {obj['totalSize']!r}, sizes add up to "
                f"{manifest.total_size}"
            )
        if obj["root"] != manifest.root:
            raise VerificationError(
                f"root mismatch: says {obj['root']!r}, the files give {manifest.root}"
            )
        if manifest.canonical_bytes() != data:
            raise VerificationError(
                "manifest is not canonical (key order, whitespace or escaping differs)"
            )
        return manifest


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
        "utf-8"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise VerificationError(f"manifest is not canonical: duplicate key {k!r}")
        out[k] = v
    return out


def _parse_entry(i: int, f: Any) -> ManifestEntry:
    if not isinstance(f, dict) or set(f) != _FILE_KEYS:
        raise VerificationError(f"files[{i}] must be an object with exactly path, size, sha256")
    path, size, sha = f["path"], f["size"], f["sha256"]
    if not isinstance(path, str):
        raise VerificationError(f"bad path in files[{i}]: not a string")
    if not _is_int(size) or size < 0:
        raise VerificationError(f"bad size for {path!r}: {size!r}")
    if not is_sha256_hex(sha):
        raise VerificationError(f"bad sha256 for {path!r}: must be 64 lowercase hex digits")
    return ManifestEntry(path, size, sha)


def _validate_entries(files: tuple[ManifestEntry, ...], *, fields_checked: bool = False) -> None:
    """Paths, sizes and digests valid, no path twice, no file that is also a folder.
    fields_checked: sizes and digests were already checked (by _parse_entry)."""
    previous: bytes | None = None
    for e in files:
        reason = path_problem(e.path)
        if reason is not None:
            raise VerificationError(f"bad path {e.path!r}: {reason}")
        if not fields_checked:
            if not _is_int(e.size) or e.size < 0:
                raise VerificationError(f"bad size for {e.path!r}: {e.size!r}")
            if not is_sha256_hex(e.sha256):
                raise VerificationError(
                    f"bad sha256 for {e.path!r}: must be 64 lowercase hex digits"
                )
        key = _utf8_key(e.path)
        if key == previous:
            raise VerificationError(f"bad path {e.path!r}: listed twice")
        previous = key
    # A file and a folder of the same name cannot both exist on disk.
    paths = {e.path for e in files}
    for e in files:
        parts = e.path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in paths:
                raise VerificationError(f"bad path {e.path!r}: {prefix!r} is also listed as a file")


def verify_against_folder(
    manifest: Manifest,
    folder: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    report_extra: bool = True,
) -> list[Problem]:
    """List exactly what differs between `folder` now and `manifest`: an empty list = intact.

    `folder` is the contribution root (ScanResult.root when it was added). For a single-file
    contribution that is the file's parent: pass report_extra=False so siblings are ignored.
    Sizes are compared first so a file that grew is reported without hashing it.
    """
    scan = scan_paths([folder], cancel=cancel)
    expected = manifest.by_path()
    found = {f.rel_path: f for f in scan.files}
    problems = [
        p
        for p in scan.problems
        if p.severity is Severity.ERROR
        and p.path is not None
        and (report_extra or p.path in expected)
    ]
    to_hash: list[ScannedFile] = []
    for path, entry in expected.items():
        f = found.get(path)
        if f is None:
            problems.append(Problem(Severity.ERROR, "missing: listed in the manifest", path))
        elif f.size != entry.size:
            problems.append(
                Problem(
                    Severity.ERROR,
                    f"changed: size is {f.size} bytes, the manifest says {entry.size}",
                    path,
                )
            )
        else:
            to_hash.append(f)
    for path in found.keys() - expected.keys() if report_extra else ():
        problems.append(Problem(Severity.ERROR, "extra: not listed in the manifest", path))
    hashed = hash_files(to_hash, progress=progress, cancel=cancel)
    problems.extend(hashed.problems)
    for h in hashed.entries:
        if h.sha256 != expected[h.scanned.rel_path].sha256:
            problems.append(
                Problem(
                    Severity.ERROR, "changed: content differs (sha256 mismatch)", h.scanned.rel_path
                )
            )
    problems.sort(key=lambda p: ((p.path or "").encode("utf-8"), p.message))
    return problems
