"""File listing and guarded opening shared by every detector.

Every read of user data goes through `open_binary` so that an unreadable file becomes a
Problem in one place, and so that tests can simulate unreadability even when run as root.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from app.domain.errors import Cancelled
from app.domain.problems import Problem, Severity
from app.formats.base import FormatReport

CancelFn = Callable[[], bool]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
# Files that accompany datasets everywhere and are not a format of their own.
DOC_NAMES = frozenset(
    {"readme", "readme.md", "readme.txt", "license", "license.txt", "license.md", "licence"}
    | {"citation.cff", ".gitattributes", ".gitignore", "notice", "notice.txt", ".ds_store"}
)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One regular file under the detected root, with its relative POSIX path."""

    rel: str
    path: Path
    size: int

    @property
    def name(self) -> str:
        return PurePosixPath(self.rel).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.rel).suffix.lower()

    @property
    def parent(self) -> str:
        """Relative parent folder; "" for the root itself."""
        parent = str(PurePosixPath(self.rel).parent)
        return "" if parent == "." else parent


def join(folder: str, name: str) -> str:
    """Join relative POSIX parts where "" means the root."""
    return f"{folder}/{name}" if folder else name


def part_path(folder: str) -> str:
    """The FormatReport.path spelling of a relative folder ("." for the root)."""
    return folder or "."


def under(folder: str, rel: str) -> bool:
    """Whether `rel` lies inside relative folder `folder` ("" = root)."""
    return not folder or rel.startswith(folder + "/")


@dataclass(slots=True)
class ScanContext:
    """What detectors share: the file listing and the cancel callback."""

    root: Path
    entries: dict[str, FileEntry]
    cancel: CancelFn | None = None
    problems: list[Problem] = field(default_factory=list)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("Format detection was cancelled.")

    def files_under(self, folder: str, available: Iterable[str] | None = None) -> list[FileEntry]:
        names = self.entries.keys() if available is None else available
        return [self.entries[r] for r in sorted(names) if under(folder, r)]


@dataclass(slots=True)
class Claim:
    """A recognised dataset and the files it owns, so they are not reported again."""

    report: FormatReport
    files: set[str] = field(default_factory=set)


def problem_for_os_error(exc: OSError, rel: str) -> Problem:
    """Turn an OS error on a user's file into a message the user can act on."""
    if isinstance(exc, PermissionError):
        msg = f"Cannot read '{rel}': permission denied. Check the file's permissions."
    elif isinstance(exc, FileNotFoundError):
        msg = f"'{rel}' disappeared while it was being read."
    elif isinstance(exc, IsADirectoryError):
        msg = f"'{rel}' is a folder, not a file."
    else:
        msg = f"Cannot read '{rel}': {exc.strerror or exc}."
    return Problem(Severity.ERROR, msg, rel)


def empty_file_problem(rel: str) -> Problem:
    return Problem(Severity.ERROR, f"'{rel}' is empty (0 bytes).", rel)


def open_binary(path: Path) -> BinaryIO:
    """Open a user file for reading; the single place detectors open files."""
    return open(path, "rb")


def read_small(entry: FileEntry, limit: int, problems: list[Problem]) -> bytes | None:
    """Read a small file whole (sidecars, yaml, xml); None with a problem if impossible."""
    if entry.size > limit:
        problems.append(
            Problem(
                Severity.WARNING,
                f"'{entry.rel}' is {entry.size} bytes, larger than the {limit} bytes "
                "inspected for this kind of file; it was not read.",
                entry.rel,
            )
        )
        return None
    try:
        with open_binary(entry.path) as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        problems.append(problem_for_os_error(exc, entry.rel))
        return None


def list_files(
    root: Path, files: Sequence[str] | None, cancel: CancelFn | None
) -> tuple[dict[str, FileEntry], list[Problem]]:
    """List regular files under root without following symlinks.

    With `files` (the scanner's listing) the tree is not walked again; each listed path is
    only lstat-ed so that sizes are current.
    """
    ctx = ScanContext(root, {}, cancel)
    if files is not None:
        for rel in files:
            ctx.check_cancel()
            _add_listed(ctx, rel)
    else:
        _walk(ctx, root, "")
    return ctx.entries, ctx.problems


def _add_listed(ctx: ScanContext, rel: str) -> None:
    path = ctx.root.joinpath(*rel.split("/"))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        ctx.problems.append(
            Problem(Severity.WARNING, f"'{rel}' was listed but no longer exists.", rel)
        )
        return
    except OSError as exc:
        ctx.problems.append(problem_for_os_error(exc, rel))
        return
    _add_stat(ctx, rel, path, st)


def _add_stat(ctx: ScanContext, rel: str, path: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        ctx.problems.append(
            Problem(Severity.WARNING, f"'{rel}' is a symbolic link; it was not followed.", rel)
        )
    elif stat.S_ISREG(st.st_mode):
        ctx.entries[rel] = FileEntry(rel, path, st.st_size)
    elif not stat.S_ISDIR(st.st_mode):
        ctx.problems.append(
            Problem(Severity.WARNING, f"'{rel}' is not a regular file; it was skipped.", rel)
        )


def _walk(ctx: ScanContext, folder: Path, rel_folder: str) -> None:
    """Depth-first walk; iterative over a stack so deep trees cannot overflow recursion."""
    stack: list[tuple[Path, str]] = [(folder, rel_folder)]
    while stack:
        ctx.check_cancel()
        current, rel_current = stack.pop()
        try:
            with os.scandir(current) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            shown = rel_current or "."
            if isinstance(exc, PermissionError):
                msg = f"Cannot open folder '{shown}': permission denied. Its files were skipped."
            else:
                msg = f"Cannot open folder '{shown}': {exc.strerror or exc}."
            ctx.problems.append(Problem(Severity.ERROR, msg, shown))
            continue
        subdirs: list[tuple[Path, str]] = []
        for child in children:
            rel = join(rel_current, child.name)
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                ctx.problems.append(problem_for_os_error(exc, rel))
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((Path(child.path), rel))
            else:
                _add_stat(ctx, rel, Path(child.path), st)
        stack.extend(reversed(subdirs))
