"""The layer arrows of docs/design.md, enforced: a forbidden import fails this test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

QT = ("PySide6", "shiboken6", "pyqtgraph")
# The UI reaches registries only through services (which use app.registry_client's bounds).
HTTP = ("requests", "urllib3", "httpx", "http", "urllib", "socket", "aiohttp")
PACKAGE_CONSTANTS = {"app.__version__", "app.APP_NAME", "app.APP_ID"}

# package → app/registry packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "app.domain": set(),
    # Atomic writes, fsyncs and the GC pause: I/O, so not in app.domain; shared with registry.
    "app.durable": set(),
    "app.formats": {"app.domain"},
    "app.manifest": {"app.domain", "app.durable", "app.formats", "app.settings"},
    "app.signing": {"app.domain", "app.manifest", "app.settings"},
    "app.store": {"app.domain", "app.manifest", "app.settings"},
    "app.registry_client": {"app.domain", "app.manifest", "app.signing", "app.settings"},
    "app.tlog": {"app.domain", "app.signing"},
    "app.services": {
        "app.domain",
        "app.durable",
        "app.formats",
        "app.manifest",
        "app.signing",
        "app.store",
        "app.registry_client",
        "app.settings",
        "app.tlog",
    },
    "app.cli": {"app.domain", "app.services", "app.settings", "app.ui.app"},
    "app.ui": {
        "app.domain",
        "app.formats",
        "app.manifest",
        "app.services",
        "app.settings",
        "app.store",
        "app.signing",
    },
    "registry": {
        "app.domain",
        "app.durable",
        "app.manifest",
        "app.signing",
        "app.formats",
        "app.tlog",
    },
}


def _package_of(module: str) -> str | None:
    for pkg in sorted(ALLOWED, key=len, reverse=True):
        if module == pkg or module.startswith(pkg + "."):
            return pkg
    return None


def _modules() -> list[tuple[str, Path]]:
    out = []
    for base in ("app", "registry"):
        for path in (ROOT / base).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join(parts), path))
    return out


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names)
    return names


def _violations(module: str, imports: list[str]) -> list[str]:
    pkg = _package_of(module)
    if pkg is None:
        return []
    bad = []
    for name in imports:
        top = name.split(".")[0]
        if top in QT and pkg != "app.ui":
            bad.append(f"{module} imports {name}: only app.ui may import Qt")
            continue
        if top not in ("app", "registry"):
            if pkg == "app.ui" and top in HTTP:
                bad.append(f"{module} imports {name}: the UI talks to registries through services")
            if pkg == "app.domain" and top in ("sqlalchemy", "requests", "keyring"):
                bad.append(f"{module} imports {name}: domain has no I/O or storage")
            continue
        if name == "app" or name in PACKAGE_CONSTANTS:
            continue  # the version and app name are for everyone
        target = _package_of(name) or name
        if target == pkg or name == pkg:
            continue
        allowed = ALLOWED[pkg]
        if target in allowed or name in allowed or any(name.startswith(a + ".") for a in allowed):
            continue
        bad.append(f"{module} imports {name}: not allowed from {pkg}")
    return bad


def test_layer_arrows_hold() -> None:
    problems = []
    for module, path in _modules():
        problems.extend(_violations(module, _imports(path)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("app.domain.states", "sqlalchemy"),
        ("app.services.catalogue", "PySide6.QtWidgets"),
        ("registry.app", "app.services.catalogue"),
        ("app.store.models", "app.services.catalogue"),
        ("app.formats.csv_tsv", "app.store.models"),
    ],
)
def test_checker_catches_forbidden_imports(module: str, imported: str) -> None:
    assert _violations(module, [imported])
