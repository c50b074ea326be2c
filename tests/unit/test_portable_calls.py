"""Unix-only calls in app/ and registry/ must sit behind a guard, so the app and its embedded
demo registry keep running on Windows and macOS. app/domain/portable.py is the one door
(its fallbacks are run on Linux by tests/unit/domain/test_portable.py); elsewhere a call is
accepted under `if hasattr(os, "<name>")`, a platform test (`sys.platform`, `os.name`), or a
`try` that handles AttributeError/ImportError (OSError for /proc and /sys reads)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOOR = Path("app/domain/portable.py")

UNIX_ONLY_OS = {
    "pread", "pwrite", "preadv", "pwritev", "readv", "writev", "fdatasync", "sync",
    "posix_fadvise", "posix_fallocate", "POSIX_FADV_SEQUENTIAL", "POSIX_FADV_DONTNEED",
    "fchmod", "lchmod", "fchown", "chown", "lchown", "link", "mkfifo", "mknod",
    "O_DIRECT", "O_NOATIME", "O_NOFOLLOW", "O_CLOEXEC", "O_PATH", "O_TMPFILE", "O_DSYNC",
    "getuid", "geteuid", "getgid", "getegid", "fork", "forkpty", "setsid", "setpgrp",
    "killpg", "getpgid", "getpgrp", "nice", "statvfs", "fstatvfs", "sendfile",
    "copy_file_range", "splice", "sched_getaffinity", "sched_setaffinity", "getloadavg",
    "memfd_create", "eventfd", "wait3", "wait4", "openpty", "ttyname", "setpriority",
}  # fmt: skip
UNIX_ONLY_SIGNALS = {
    "SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGALRM", "SIGQUIT", "SIGPIPE",
    "alarm", "setitimer", "pthread_kill", "pthread_sigmask",
}  # fmt: skip
# A constant is guarded by the test for the call it belongs to.
GUARDED_BY = {"POSIX_FADV_SEQUENTIAL": "posix_fadvise", "POSIX_FADV_DONTNEED": "posix_fadvise"}
# Reviewed exceptions: (file, what) → why it is safe.
ACCEPTED = {
    ("app/registry_client/http.py", "'/proc/sys/net/core/wmem_max'"): (
        "a parameter default; send_buffer_options reads it under try/except OSError"
    ),
}
UNIX_ONLY_MODULES = {"fcntl", "resource", "termios", "pwd", "grp", "posix", "tty", "pty"}
UNIX_PATHS = ("/proc/", "/sys/", "/dev/shm")


def _guard_text(node: ast.AST) -> str:
    return ast.unparse(node)


def _guarded(ancestors: list[ast.AST], node: ast.AST, name: str, path_read: bool) -> bool:
    for parent in ancestors:
        names = (f"'{name}'", f"'{GUARDED_BY.get(name, name)}'")
        if isinstance(parent, ast.If | ast.IfExp | ast.While):
            test = _guard_text(parent.test)
            if any(n in test for n in names) or "sys.platform" in test or "os.name" in test:
                return True
        if isinstance(parent, ast.BoolOp):  # `hasattr(os, "x") and os.x(...)`
            tests = [_guard_text(v) for v in parent.values if v is not node]
            if any(n in t for n in names for t in tests):
                return True
        if isinstance(parent, ast.Try):
            caught = " ".join(_guard_text(h.type) for h in parent.handlers if h.type is not None)
            if "AttributeError" in caught or "ImportError" in caught:
                return True
            if path_read and "OSError" in caught:
                return True
    return False


def unguarded_calls(source: str, filename: str = "<source>") -> list[str]:
    """Where `source` uses a Unix-only call outside a guard, as 'line: what'."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def visit(node: ast.AST, ancestors: list[ast.AST]) -> None:
        what: str | None = None
        name = ""
        path_read = False
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in UNIX_ONLY_OS:
                what, name = f"os.{node.attr}", node.attr
            elif node.value.id == "signal" and node.attr in UNIX_ONLY_SIGNALS:
                what, name = f"signal.{node.attr}", node.attr
        elif isinstance(node, ast.Attribute) and node.attr == "prctl":
            what, name = "prctl", "prctl"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            for module in modules:
                if module and module.split(".")[0] in UNIX_ONLY_MODULES:
                    what, name = f"import {module}", module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith(UNIX_PATHS):
                what, name, path_read = repr(node.value), node.value, True
        if what is not None and not _guarded(ancestors, node, name, path_read):
            found.append(f"{getattr(node, 'lineno', 0)}: {what}")
        for child in ast.iter_child_nodes(node):
            visit(child, [node, *ancestors])

    visit(tree, [])
    return found


def test_no_unguarded_unix_only_call_in_app_or_registry() -> None:
    problems = []
    for base in ("app", "registry"):
        for path in sorted((ROOT / base).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel == DOOR:
                continue
            for hit in unguarded_calls(path.read_text("utf-8"), str(rel)):
                if (rel.as_posix(), hit.split(": ", 1)[1]) not in ACCEPTED:
                    problems.append(f"{rel}:{hit}")
    assert not problems, (
        "Unix-only calls without a guard (use app.domain.portable, or guard them with "
        "hasattr/sys.platform and give the other platforms a fallback):\n" + "\n".join(problems)
    )


def test_the_check_catches_a_new_unguarded_call_and_accepts_guarded_ones() -> None:
    bad = (
        "import os, signal, fcntl\n"
        "def f(fd):\n"
        "    os.pread(fd, 1, 0)\n"
        "    os.writev(fd, [b'x'])\n"
        "    os.kill(1, signal.SIGKILL)\n"
        "    open('/proc/self/status').read()\n"
    )
    hits = unguarded_calls(bad)
    assert [h.split(": ")[1] for h in hits] == [
        "import fcntl", "os.pread", "os.writev", "signal.SIGKILL", "'/proc/self/status'",
    ]  # fmt: skip
    good = (
        "import os, sys\n"
        "def f(fd):\n"
        "    if hasattr(os, 'pread'):\n"
        "        os.pread(fd, 1, 0)\n"
        "    if sys.platform.startswith('linux'):\n"
        "        os.sched_getaffinity(0)\n"
        "    try:\n"
        "        open('/proc/self/status').read()\n"
        "    except OSError:\n"
        "        pass\n"
        "    try:\n"
        "        import fcntl\n"
        "    except ImportError:\n"
        "        fcntl = None\n"
    )
    assert unguarded_calls(good) == []


def test_the_portable_door_has_a_fallback_for_every_call_it_guards() -> None:
    """Inside the door each Unix-only call is itself behind hasattr or a platform test."""
    assert unguarded_calls((ROOT / DOOR).read_text("utf-8"), str(DOOR)) == []
