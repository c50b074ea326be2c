"""Scanning: what goes into a manifest, and every odd thing in a user's tree reported."""

from __future__ import annotations

import os
import socket
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.domain.errors import BadInputError, Cancelled
from app.domain.problems import Problem, Severity
from app.manifest.scan import scan_paths


def _messages(problems: list[Problem], severity: Severity) -> dict[str | None, str]:
    return {p.path: p.message for p in problems if p.severity is severity}


def test_folder_root_relative_posix_sorted(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "b" / "c").mkdir(parents=True)
    (root / "b" / "c" / "deep.txt").write_bytes(b"1")
    (root / "a.txt").write_bytes(b"22")
    (root / "B.txt").write_bytes(b"333")
    result = scan_paths([root])
    assert result.root == root
    assert [f.rel_path for f in result.files] == ["B.txt", "a.txt", "b/c/deep.txt"]
    assert [f.size for f in result.files] == [3, 2, 1]
    st = os.stat(root / "a.txt")
    a = result.files[1]
    assert (a.abs_path, a.mtime_ns, a.inode) == (root / "a.txt", st.st_mtime_ns, st.st_ino)
    assert result.problems == []


def test_single_file_root_is_parent_and_several_paths_share_common_parent(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f.csv").write_bytes(b"a")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "g.csv").write_bytes(b"b")
    one = scan_paths([tmp_path / "x" / "f.csv"])
    assert one.root == tmp_path / "x"
    assert [f.rel_path for f in one.files] == ["f.csv"]
    several = scan_paths([tmp_path / "y", tmp_path / "x" / "f.csv"])
    assert several.root == tmp_path
    assert [f.rel_path for f in several.files] == ["x/f.csv", "y/g.csv"]


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        scan_paths([tmp_path / "nope"])


def test_empty_folder_is_an_error_problem(tmp_path: Path) -> None:
    (tmp_path / "e" / "sub").mkdir(parents=True)
    result = scan_paths([tmp_path / "e"])
    assert result.files == []
    assert any(
        p.severity is Severity.ERROR and "folder is empty" in p.message for p in result.problems
    )


def test_zero_byte_files_included_with_warning(tmp_path: Path) -> None:
    (tmp_path / "z").write_bytes(b"")
    result = scan_paths([tmp_path])
    assert [f.rel_path for f in result.files] == ["z"]
    assert "0 bytes" in _messages(result.problems, Severity.WARNING)["z"]


def test_odd_names_work_and_nfd_becomes_nfc(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "café")
    for name in ["with space.txt", "per%cent, comma.txt", nfd, "☃"]:
        (tmp_path / name).write_bytes(b"x")
    result = scan_paths([tmp_path])
    names = [f.rel_path for f in result.files]
    assert sorted(names) == sorted(["with space.txt", "per%cent, comma.txt", "café", "☃"])
    cafe = next(f for f in result.files if f.rel_path == "café")
    assert cafe.abs_path.name == nfd  # still opens the real file
    assert result.problems == []


def test_control_characters_in_names_are_errors(tmp_path: Path) -> None:
    """Manifest paths refuse control characters, so the scan names such files up front."""
    names = ["new\nline.txt", "tab\t.txt", "esc\x1b.txt", "del\x7f.txt", "c1\x85.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub\rdir").mkdir()
    (tmp_path / "sub\rdir" / "inside.txt").write_bytes(b"x")
    (tmp_path / "ok.txt").write_bytes(b"y")
    result = scan_paths([tmp_path])
    assert [f.rel_path for f in result.files] == ["ok.txt"]
    errors = _messages(result.problems, Severity.ERROR)
    assert sorted(errors) == sorted([*names, "sub\rdir"])
    assert all("control character" in m for m in errors.values())


def test_nfc_collision_is_an_error(tmp_path: Path) -> None:
    (tmp_path / unicodedata.normalize("NFD", "é.txt")).write_bytes(b"1")
    (tmp_path / unicodedata.normalize("NFC", "é.txt")).write_bytes(b"2")
    (tmp_path / "ok").write_bytes(b"3")
    result = scan_paths([tmp_path])
    assert [f.rel_path for f in result.files] == ["ok"]
    assert "Unicode normalisation" in _messages(result.problems, Severity.ERROR)["é.txt"]


def test_non_utf8_name_reported_and_excluded(tmp_path: Path) -> None:
    bad = os.path.join(os.fsencode(tmp_path), b"bad\xff.txt")
    with open(bad, "wb") as fh:
        fh.write(b"x")
    (tmp_path / "good.txt").write_bytes(b"y")
    result = scan_paths([tmp_path])
    assert [f.rel_path for f in result.files] == ["good.txt"]
    errors = _messages(result.problems, Severity.ERROR)
    assert "not valid UTF-8" in errors["bad\\xff.txt"]
    assert "rename" in errors["bad\\xff.txt"]


def test_symlinks_not_followed_by_default_and_outside_called_out(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes(b"secret")
    root = tmp_path / "ds"
    root.mkdir()
    (root / "real.txt").write_bytes(b"r")
    (root / "inside-link").symlink_to(root / "real.txt")
    (root / "outside-link").symlink_to(outside)
    result = scan_paths([root])
    assert [f.rel_path for f in result.files] == ["real.txt"]
    warnings = _messages(result.problems, Severity.WARNING)
    assert "symbolic link" in warnings["inside-link"]
    assert "outside" not in warnings["inside-link"]
    assert "outside the added folder" in warnings["outside-link"]
    assert str(outside) in warnings["outside-link"]


def test_symlink_loop_terminates_when_following(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_bytes(b"f")
    (root / "a" / "b" / "up").symlink_to(root / "a")
    (root / "self").symlink_to(root)
    (root / "dangling").symlink_to(root / "missing")
    result = scan_paths([root], follow_symlinks=True)
    assert [f.rel_path for f in result.files] == ["a/b/f.txt"]
    warnings = _messages(result.problems, Severity.WARNING)
    assert "loop" in warnings["a/b/up"]
    assert "loop" in warnings["self"]
    assert "broken" in warnings["dangling"]


def test_followed_links_include_target_files(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "s.txt").write_bytes(b"s")
    root = tmp_path / "ds"
    root.mkdir()
    (root / "own.txt").write_bytes(b"o")
    (root / "linked").symlink_to(shared)
    result = scan_paths([root], follow_symlinks=True)
    assert [f.rel_path for f in result.files] == ["linked/s.txt", "own.txt"]
    assert "outside the added folder" in _messages(result.problems, Severity.WARNING)["linked"]


def test_special_files_skipped_with_warning(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        (tmp_path / "f").write_bytes(b"x")
        result = scan_paths([tmp_path])
    finally:
        sock.close()
    assert [f.rel_path for f in result.files] == ["f"]
    warnings = _messages(result.problems, Severity.WARNING)
    assert "fifo" in warnings["pipe"]
    assert "socket" in warnings["sock"]


def test_unreadable_folder_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "hidden.txt").write_bytes(b"h")
    (root / "open.txt").write_bytes(b"o")
    locked = root / "locked"
    if os.geteuid() == 0:
        # chmod 000 does not stop root: make exactly this folder raise like it would for a user.
        real_scandir = os.scandir

        def scandir(path: str) -> Iterator[os.DirEntry[str]]:
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        result = scan_paths([root])
    finally:
        locked.chmod(0o755)
    assert [f.rel_path for f in result.files] == ["open.txt"]
    assert "permission denied" in _messages(result.problems, Severity.ERROR)["locked"]


def test_cancel_stops_scan(tmp_path: Path) -> None:
    for i in range(300):  # cancel() is polled every 256 entries
        (tmp_path / f"f{i}").touch()
    with pytest.raises(Cancelled):
        scan_paths([tmp_path], cancel=lambda: True)


def test_backslash_names_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "a\\b.txt").write_bytes(b"x")
    (tmp_path / "ok").write_bytes(b"y")
    result = scan_paths([tmp_path])
    assert [f.rel_path for f in result.files] == ["ok"]
    assert "backslash" in _messages(result.problems, Severity.ERROR)["a\\b.txt"]


def test_overlapping_paths_list_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.txt").write_bytes(b"x")
    result = scan_paths([tmp_path / "ds", tmp_path / "ds" / "a.txt"])
    assert [f.rel_path for f in result.files] == ["ds/a.txt"]
    assert result.problems == []


def test_unreadable_file_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_bytes(b"s")
    (tmp_path / "open").write_bytes(b"o")
    secret = str(tmp_path / "secret")
    if os.geteuid() == 0:
        # Root can read anything: answer os.access as it would for a normal user, for this file.
        real_access = os.access

        def access(path: str, mode: int, **kwargs: object) -> bool:
            return False if os.fspath(path) == secret else real_access(path, mode)

        monkeypatch.setattr(os, "access", access)
    else:
        os.chmod(secret, 0)
    result = scan_paths([tmp_path])
    assert [f.rel_path for f in result.files] == ["open"]
    assert "permission denied" in _messages(result.problems, Severity.ERROR)["secret"]
