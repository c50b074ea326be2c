"""Walk the paths a user added and list the regular files that will go into a manifest.

Everything odd about the user's tree (links, unreadable folders, names that cannot be
represented in a manifest) is reported as a Problem rather than raised, so the UI can show the
whole list at once; only a path that does not exist at all is an error.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.domain.errors import BadInputError, Cancelled
from app.domain.problems import Problem, Severity

# C0 controls, DEL and C1 controls: never in a manifest path (app.manifest.canonical).
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CANCEL_EVERY = 256  # entries between cancel() checks: cheap, yet well under 0.5 s


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """One regular file, with the stat fields the hash cache keys on."""

    abs_path: Path
    rel_path: str  # POSIX, NFC-normalised, relative to ScanResult.root
    size: int
    mtime_ns: int
    inode: int


@dataclass(slots=True)
class ScanResult:
    """The files found under `root`, sorted by the UTF-8 bytes of rel_path, plus problems."""

    root: Path
    files: list[ScannedFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(slots=True)
class _Walker:
    root: Path
    follow_symlinks: bool
    cancel: Callable[[], bool] | None
    files: list[ScannedFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)
    ticks: int = 0
    real_root: str = ""

    def _tick(self) -> None:
        self.ticks += 1
        if self.cancel is not None and self.ticks % _CANCEL_EVERY == 0 and self.cancel():
            raise Cancelled("Scanning was cancelled.")

    def problem(self, severity: Severity, message: str, rel: str | None) -> None:
        self.problems.append(Problem(severity, message, _printable(rel) if rel else None))

    def inside_root(self, target: str) -> bool:
        if not self.real_root:
            self.real_root = os.path.realpath(self.root)
        return os.path.commonpath([self.real_root, target]) == self.real_root

    def add_file(self, path: str, rel: str, st: os.stat_result) -> None:
        if not os.access(path, os.R_OK):
            self.problem(Severity.ERROR, "cannot read this file (permission denied); skipped", rel)
            return
        if st.st_size == 0:
            self.problem(Severity.WARNING, "empty file (0 bytes)", rel)
        self.files.append(ScannedFile(Path(path), rel, st.st_size, st.st_mtime_ns, st.st_ino))

    def visit_dir(self, path: str, rel: str, ancestors: frozenset[tuple[int, int]]) -> None:
        """Iterative depth-first walk: deep trees must not hit the recursion limit."""
        try:
            st = os.stat(path)
        except OSError as exc:
            self.problem(Severity.ERROR, f"cannot read this folder ({_reason(exc)}); skipped", rel)
            return
        stack: list[tuple[str, str, frozenset[tuple[int, int]]]] = [
            (path, rel, ancestors | {(st.st_dev, st.st_ino)})
        ]
        self.seen_dirs.add((st.st_dev, st.st_ino))
        while stack:
            dir_path, dir_rel, chain = stack.pop()
            try:
                with os.scandir(dir_path) as it:
                    entries = list(it)
            except OSError as exc:
                self.problem(
                    Severity.ERROR,
                    f"cannot read this folder ({_reason(exc)}); its contents were skipped",
                    dir_rel or ".",
                )
                continue
            for entry in entries:
                self._tick()
                sub = self.visit_entry(entry, dir_rel, chain)
                if sub is not None:
                    stack.append(sub)

    def visit_entry(
        self, entry: os.DirEntry[str], dir_rel: str, chain: frozenset[tuple[int, int]]
    ) -> tuple[str, str, frozenset[tuple[int, int]]] | None:
        """Classify one directory entry; return a folder still to walk, if any."""
        rel = f"{dir_rel}/{entry.name}" if dir_rel else entry.name
        if not _is_utf8(entry.name):
            self.problem(
                Severity.ERROR,
                f"the name {_printable(entry.name)!r} is not valid UTF-8 and cannot be put in "
                "a manifest; rename it and add the folder again",
                rel,
            )
            return None
        if "\\" in entry.name:
            self.problem(
                Severity.ERROR,
                "the name contains a backslash, which manifests (and Windows) do not allow; "
                "rename it and add the folder again",
                rel,
            )
            return None
        if CONTROL_CHARS.search(entry.name):
            self.problem(
                Severity.ERROR,
                "the name contains a control character (such as a newline or a tab), which "
                "manifests do not allow; rename it and add the folder again",
                rel,
            )
            return None
        try:
            if entry.is_symlink():
                return self.visit_link(entry, rel, chain)
            lst = entry.stat(follow_symlinks=False)
        except OSError as exc:
            self.problem(Severity.ERROR, f"cannot read this entry ({_reason(exc)}); skipped", rel)
            return None
        if stat.S_ISDIR(lst.st_mode):
            key = (lst.st_dev, lst.st_ino)
            self.seen_dirs.add(key)
            return (entry.path, rel, chain | {key})
        if stat.S_ISREG(lst.st_mode):
            self.add_file(entry.path, rel, lst)
            return None
        self.problem(Severity.WARNING, f"{_special_kind(lst.st_mode)} skipped", rel)
        return None

    def visit_link(
        self, entry: os.DirEntry[str], rel: str, chain: frozenset[tuple[int, int]]
    ) -> tuple[str, str, frozenset[tuple[int, int]]] | None:
        target = os.path.realpath(entry.path)
        outside = not self.inside_root(target)
        where = f" to {target}, outside the added folder" if outside else ""
        if not self.follow_symlinks:
            self.problem(Severity.WARNING, f"symbolic link{where} not followed; skipped", rel)
            return None
        try:
            st = os.stat(entry.path)
        except OSError:
            self.problem(Severity.WARNING, "broken symbolic link; skipped", rel)
            return None
        if outside:
            self.problem(Severity.WARNING, f"symbolic link{where}; followed", rel)
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in chain:
                self.problem(
                    Severity.WARNING,
                    f"symbolic link loop (points back to {target}); not followed",
                    rel,
                )
                return None
            if key in self.seen_dirs:
                self.problem(
                    Severity.WARNING, "folder already included through another path; skipped", rel
                )
                return None
            self.seen_dirs.add(key)
            return (entry.path, rel, chain | {key})
        if stat.S_ISREG(st.st_mode):
            self.add_file(entry.path, rel, st)
            return None
        self.problem(Severity.WARNING, f"link to a {_special_kind(st.st_mode)} skipped", rel)
        return None


def scan_paths(
    paths: Sequence[Path],
    *,
    follow_symlinks: bool = False,
    cancel: Callable[[], bool] | None = None,
) -> ScanResult:
    """List the regular files under `paths`, relative to their common root.

    Paths given explicitly are taken as the user meant them (a link given directly is
    followed); links found inside folders follow `follow_symlinks`.
    """
    if not paths:
        raise BadInputError("Nothing to add: no path was given.")
    absolute: list[Path] = []
    for p in paths:
        a = Path(os.path.abspath(p))
        if not os.path.exists(a):
            raise BadInputError(f"{p} does not exist", hint="check the path and try again")
        if a not in absolute:
            absolute.append(a)
    root = _root_of(absolute)
    walker = _Walker(root=root, follow_symlinks=follow_symlinks, cancel=cancel)
    for a in absolute:
        rel = os.path.relpath(a, root).replace(os.sep, "/")
        rel = "" if rel == "." else rel
        if rel and any(not _is_utf8(part) for part in rel.split("/")):
            walker.problem(
                Severity.ERROR,
                "the name is not valid UTF-8 and cannot be put in a manifest; rename it",
                rel,
            )
            continue
        if os.path.isdir(a):
            walker.visit_dir(str(a), rel, frozenset())
        else:
            try:
                st = os.stat(a)
            except OSError as exc:
                walker.problem(Severity.ERROR, f"cannot read this file ({_reason(exc)})", rel)
                continue
            if stat.S_ISREG(st.st_mode):
                walker.add_file(str(a), rel, st)
            else:
                walker.problem(Severity.WARNING, f"{_special_kind(st.st_mode)} skipped", rel)
    files, problems = _normalise(walker.files, walker.problems)
    if not files:
        problems.append(Problem(Severity.ERROR, "folder is empty: there are no files to add"))
    return ScanResult(root=root, files=files, problems=problems)


def _root_of(absolute: Sequence[Path]) -> Path:
    if len(absolute) == 1:
        only = absolute[0]
        return only if os.path.isdir(only) else only.parent
    return Path(os.path.commonpath([str(a.parent) for a in absolute]))


def _normalise(
    files: list[ScannedFile], problems: list[Problem]
) -> tuple[list[ScannedFile], list[Problem]]:
    """NFC-normalise names (macOS writes NFD) and drop names that collide afterwards."""
    by_name: dict[str, list[ScannedFile]] = {}
    seen: set[Path] = set()
    for f in files:
        if f.abs_path in seen:
            continue  # a file given both directly and inside a given folder
        seen.add(f.abs_path)
        nfc = unicodedata.normalize("NFC", f.rel_path)
        by_name.setdefault(nfc, []).append(
            f if nfc == f.rel_path else ScannedFile(f.abs_path, nfc, f.size, f.mtime_ns, f.inode)
        )
    kept: list[ScannedFile] = []
    for name, group in by_name.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        problems.append(
            Problem(
                Severity.ERROR,
                f"{len(group)} files have names that differ only in Unicode normalisation "
                "and would be the same name in the manifest; rename all but one",
                name,
            )
        )
    kept.sort(key=lambda f: f.rel_path.encode("utf-8"))
    return kept, problems


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    """A name safe to show and store: undecodable bytes shown as \\xNN escapes."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "it disappeared"
    return exc.strerror or exc.__class__.__name__


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (fifo)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    return "special file"
