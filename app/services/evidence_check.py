"""Check attribution evidence against the contributor's own copy of the files, offline.

A claim names a file of the contribution by its SHA-256 and, for a span, a byte offset, a
length and the SHA-256 of those bytes. The catalogue knows each file of the contribution as it
was submitted (relative path, size, mtime, SHA-256): the file is found by its digest, and

- a file whose size and mtime are unchanged is taken as unchanged (the catalogue's own fast
  path); otherwise it is hashed whole, once per check run;
- the span is read with one positioned read and hashed;
- a span whose bytes do not hash to the claimed digest is only called a mismatch after the
  whole file was hashed and found to be the submitted bytes: then the registry (or the operator
  behind it) claims something about the file that is false. A file that differs from what was
  submitted is "your copy changed", never a mismatch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from app.domain.portable import pread

READ_BLOCK = 1024 * 1024
_sha256 = hashlib.sha256
SHOWN_CHARS = 400
CONTEXT_BYTES = 240  # of the span's lines, either side


class Status(StrEnum):
    VERIFIED = "verified"
    CHANGED = "changed"
    MISSING = "missing"
    ASSERTED = "operator-asserted"
    SPAN_MISMATCH = "span-mismatch"
    NOT_IN_CONTRIBUTION = "not-in-contribution"


LABELS: dict[Status, str] = {
    Status.VERIFIED: "verified against your files",
    Status.CHANGED: "your copy changed since submission",
    Status.MISSING: "file not on this computer",
    Status.ASSERTED: "operator-asserted",
    Status.SPAN_MISMATCH: "span mismatch: the registry's claim is false for your unchanged file",
    Status.NOT_IN_CONTRIBUTION: "the registry names a file that is not in your contribution",
}

# Statuses that mean the registry or the operator behind it claimed something false.
FALSE_CLAIMS = frozenset({Status.SPAN_MISMATCH, Status.NOT_IN_CONTRIBUTION})


def label(status: str) -> str:
    try:
        return LABELS[Status(status)]
    except ValueError:
        return status


@dataclass(frozen=True, slots=True)
class LocalFile:
    """One catalogued file of a contribution, as submitted, and where it is on this computer."""

    path: str
    size: int
    sha256: str
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Claim:
    file_sha256: str
    offset: int | None = None
    length: int | None = None
    span_sha256: str | None = None

    @property
    def has_span(self) -> bool:
        return self.offset is not None and self.length is not None and bool(self.span_sha256)


@dataclass
class LocalChecker:
    """Checks claims against the files of one contribution (`files`: by SHA-256). `known`:
    the contribution is in this catalogue at all (if not, nothing of it is on this computer)."""

    files: dict[str, list[LocalFile]]
    known: bool = True
    _state: dict[str, bool | None] = field(default_factory=dict)  # path -> unchanged?
    _hashed: set[str] = field(default_factory=set)  # paths confirmed by a whole-file hash
    _fds: dict[str, int] = field(default_factory=dict)
    _ready: dict[str, tuple[int, int]] = field(default_factory=dict)  # sha -> (fd, size)

    @classmethod
    def of(cls, files: Iterable[LocalFile], known: bool = True) -> LocalChecker:
        by: dict[str, list[LocalFile]] = {}
        for f in files:
            by.setdefault(f.sha256, []).append(f)
        return cls(by, known)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._ready.clear()

    def __enter__(self) -> LocalChecker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def check(self, claim: Claim | None) -> Status:
        if claim is None:
            return Status.ASSERTED
        # Fast path: a span of a file already found unchanged (one read, one hash).
        ready = self._ready.get(claim.file_sha256)
        if ready is not None and claim.span_sha256 and claim.offset is not None:
            fd, size = ready
            offset, length = claim.offset, claim.length or 0
            if 0 <= offset and 0 <= length and offset + length <= size:
                try:
                    data = pread(fd, length, offset)
                except OSError:
                    data = b""
                if len(data) == length and _sha256(data).hexdigest() == claim.span_sha256:
                    return Status.VERIFIED
        return self._check(claim)

    def _check(self, claim: Claim) -> Status:
        candidates = self.files.get(claim.file_sha256)
        if not candidates:
            return Status.NOT_IN_CONTRIBUTION if self.known else Status.MISSING
        changed = False
        for f in candidates:
            state = self._unchanged(f)
            if state is None:
                continue
            if not state:
                changed = True
                continue
            status = self._check_span(f, claim)
            if self._state.get(f.path) and f.path in self._fds:
                self._ready.setdefault(claim.file_sha256, (self._fds[f.path], f.size))
            return status
        return Status.CHANGED if changed else Status.MISSING

    def _unchanged(self, f: LocalFile) -> bool | None:
        """True: the submitted bytes (fast path or hashed); False: changed; None: missing."""
        if f.path in self._state:
            return self._state[f.path]
        try:
            st = os.stat(f.path)
        except OSError:
            state: bool | None = None
        else:
            if st.st_size != f.size:
                state = False
            elif st.st_mtime_ns == f.mtime_ns:
                state = True
            else:
                state = self._hash_matches(f)
        self._state[f.path] = state
        return state

    def _hash_matches(self, f: LocalFile) -> bool | None:
        try:
            same = file_sha256(f.path) == f.sha256
        except OSError:
            return None
        if same:
            self._hashed.add(f.path)
        return same

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return fd

    def _check_span(self, f: LocalFile, claim: Claim) -> Status:
        if not claim.has_span:
            return Status.VERIFIED  # a file-level claim (retrieval without a chunk)
        offset, length = int(claim.offset or 0), int(claim.length or 0)
        if offset < 0 or length < 0 or offset + length > f.size:
            return Status.SPAN_MISMATCH  # beyond the end of the submitted file
        try:
            data = pread(self._fd(f.path), length, offset)
        except OSError:
            return Status.MISSING
        if len(data) == length and hashlib.sha256(data).hexdigest() == claim.span_sha256:
            return Status.VERIFIED
        if f.path not in self._hashed:
            same = self._hash_matches(f)
            self._state[f.path] = same
            if not same:
                return Status.CHANGED if same is False else Status.MISSING
        return Status.SPAN_MISMATCH

    def local_path(self, claim: Claim) -> str | None:
        """The local file a claim was checked against (the first unchanged copy)."""
        for f in self.files.get(claim.file_sha256, []):
            if self._unchanged(f):
                return f.path
        return None


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class SpanText:
    text: str  # the span decoded (at most SHOWN_CHARS characters)
    truncated: bool
    before: str = ""  # the rest of the span's first line before it
    after: str = ""  # the rest of its last line after it


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    text = data.decode("utf-8", errors="replace")
    core = text[1:-1]  # a span may cut a multi-byte character at either end
    if "\ufffd" in core and core.count("\ufffd") * 20 > max(len(core), 1):
        return None
    return text


def span_text(path: str, offset: int, length: int) -> SpanText | None:
    """The span of a text file as text, with the rest of its lines around it (at most
    CONTEXT_BYTES each side); None for bytes that are not text (NULs, or not UTF-8) or a file
    that cannot be read. One positioned read."""
    start = max(0, offset - CONTEXT_BYTES)
    shown = min(length, SHOWN_CHARS * 4)
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(offset - start + shown + CONTEXT_BYTES)
    except OSError:
        return None
    head, span = data[: offset - start], data[offset - start : offset - start + shown]
    tail = data[offset - start + shown :] if shown == length else b""
    text = _text(span)
    if text is None:
        return None
    head = head.rsplit(b"\n", 1)[-1]
    tail = tail.split(b"\n", 1)[0]
    before = head.decode("utf-8", errors="replace").lstrip("\ufffd")
    after = tail.decode("utf-8", errors="replace").rstrip("\ufffd")
    truncated = len(text) > SHOWN_CHARS or length > shown
    return SpanText(text[:SHOWN_CHARS], truncated, before, after)
