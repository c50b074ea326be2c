"""The layer arrows of docs/architecture.md, enforced: a forbidden import fails this test.

This file is the single definition of the architecture: the packages and what each may import
(`ALLOWED`), and inside the GUI the roles of app/ui's subpackages (`UI_FORBIDDEN`). An import
counts wherever it is written: at module level, inside a function, under TYPE_CHECKING (which
only relaxes the GUI role rules named in `UI_TYPE_CHECKING_OK`), or by name (`importlib`, a
module's dotted name spelled as a string).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

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


# Inside app.ui: role package → the app.ui modules it may not import. Widgets and dialogs are
# building blocks (they never reach up to pages, the window or the tools); pages do not know
# the window that shows them; adapters (models, services, flows: no layout of their own) drive
# dialogs but never pages or the window. The dev tools (screenshots, sample data, self-test)
# are reached only from the entry point (app.ui.app) and from tests.
UI_FORBIDDEN: dict[str, set[str]] = {
    "app.ui.widgets": {
        "app.ui.pages",
        "app.ui.dialogs",
        "app.ui.main_window",
        "app.ui.devtools",
        "app.ui.app",
    },
    "app.ui.dialogs": {"app.ui.pages", "app.ui.main_window", "app.ui.devtools", "app.ui.app"},
    "app.ui.pages": {"app.ui.main_window", "app.ui.devtools", "app.ui.app"},
    "app.ui.adapters": {"app.ui.pages", "app.ui.main_window", "app.ui.devtools", "app.ui.app"},
}
# Names an adapter may import for annotations only (under TYPE_CHECKING).
UI_TYPE_CHECKING_OK: dict[str, set[str]] = {
    "app.ui.adapters": {"app.ui.pages", "app.ui.main_window"},
}
# The one adapter that builds the window: the GUI session owns it across theme changes.
UI_EXCEPTIONS = {("app.ui.adapters.session", "app.ui.main_window")}
DEVTOOLS = "app.ui.devtools"
DEVTOOLS_USERS = {"app.ui.app", DEVTOOLS}
# Calls that import a module by name: the name must be a literal, so this test sees the arrow.
DYNAMIC_IMPORTS = {"import_module", "__import__", "find_spec"}


class Import(NamedTuple):
    name: str
    typing_only: bool = False  # written under `if TYPE_CHECKING:`
    dynamic: bool = False  # importlib and friends, or a module name spelled as a string


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


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _import_facts(path: Path, known: set[str] | None = None) -> list[Import]:
    """Every import of a file. `known`: the dotted names of the tree's modules; a string
    constant equal to one of them (a command table, a lazily loaded handler) is an import."""
    tree = ast.parse(path.read_text("utf-8"))
    found: list[Import] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, typing_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(Import(node.module, typing_only))
            found.extend(Import(f"{node.module}.{a.name}", typing_only) for a in node.names)
        elif isinstance(node, ast.Call) and _call_name(node) in DYNAMIC_IMPORTS:
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append(Import(arg.value, typing_only, dynamic=True))
            else:
                found.append(Import("<computed>", typing_only, dynamic=True))
        elif (
            known is not None
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "." in node.value  # not the bare word "registry" in a message
            and node.value in known
        ):
            found.append(Import(node.value, typing_only, dynamic=True))
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(tree, False)
    return found


def _imports(path: Path, known: set[str] | None = None) -> list[str]:
    return [i.name for i in _import_facts(path, known) if i.name != "<computed>"]


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


def _within(name: str, packages: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _ui_violations(module: str, imports: list[Import]) -> list[str]:
    """The roles inside app.ui, the dev tools' users, and no import by computed name."""
    bad = []
    role = next((r for r in UI_FORBIDDEN if module == r or module.startswith(r + ".")), None)
    for imp in imports:
        name = imp.name
        if module.startswith("app.ui") and imp.dynamic and name == "<computed>":
            bad.append(f"{module} imports a module by a computed name: import it by name")
            continue
        if _within(name, {DEVTOOLS}) and not _within(module, DEVTOOLS_USERS):
            bad.append(f"{module} imports {name}: the dev tools are for app.ui.app and tests")
            continue
        if role is None or any(module == m and _within(name, {t}) for m, t in UI_EXCEPTIONS):
            continue
        if _within(name, UI_FORBIDDEN[role]):
            if imp.typing_only and _within(name, UI_TYPE_CHECKING_OK.get(role, set())):
                continue
            bad.append(f"{module} imports {name}: {role} may not import it")
        elif role == "app.ui.pages" and _within(name, {"app.ui.pages"}) and not imp.typing_only:
            if name.split(".")[:4] != module.split(".")[:4]:
                bad.append(f"{module} imports {name}: a page does not import another page")
    return bad


def test_layer_arrows_hold() -> None:
    modules = _modules()
    known = {m for m, _ in modules}
    problems = []
    for module, path in modules:
        facts = _import_facts(path, known)
        names = [i.name for i in facts if i.name != "<computed>"]
        problems.extend(_violations(module, names))
        problems.extend(_ui_violations(module, facts))
    assert not problems, "\n".join(problems)


def test_the_ui_roles_are_all_named() -> None:
    """Every subpackage of app/ui has its role rules here (a new one must be placed)."""
    subpackages = {
        f"app.ui.{p.name}" for p in (ROOT / "app" / "ui").iterdir() if (p / "__init__.py").exists()
    }
    assert subpackages - {DEVTOOLS, "app.ui.resources"} == set(UI_FORBIDDEN)


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


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("app.ui.widgets.detail_pane", Import("app.ui.pages.catalogue_view")),
        ("app.ui.widgets.common", Import("app.ui.dialogs.review_sheet", typing_only=True)),
        ("app.ui.dialogs.first_run", Import("app.ui.main_window")),
        ("app.ui.adapters.item_actions", Import("app.ui.pages.catalogue_view")),
        ("app.ui.adapters.services", Import("app.ui.main_window")),
        ("app.ui.pages.settings_view", Import("app.ui.main_window", typing_only=True)),
        ("app.ui.pages.catalogue_view", Import("app.ui.pages.rewards_view")),
        ("app.ui.main_window", Import("app.ui.devtools.screenshots")),
        ("app.cli.main", Import("app.ui.devtools.self_test")),
        ("app.ui.adapters.services", Import("<computed>", dynamic=True)),
    ],
)
def test_checker_catches_ui_role_breaks(module: str, imported: Import) -> None:
    assert _ui_violations(module, [imported])


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("app.ui.adapters.item_actions", Import("app.ui.pages.catalogue_view", typing_only=True)),
        ("app.ui.adapters.session", Import("app.ui.main_window")),
        ("app.ui.app", Import("app.ui.devtools.self_test")),
        ("app.ui.main_window", Import("app.ui.pages.rewards_view")),
    ],
)
def test_checker_allows_the_named_exceptions(module: str, imported: Import) -> None:
    assert not _ui_violations(module, [imported])


def test_imports_by_name_are_arrows(tmp_path: Path) -> None:
    """importlib with a literal name, and a module's dotted name in a string, are imports."""
    source = tmp_path / "m.py"
    source.write_text(
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from app.ui.main_window import MainWindow\n"
        "MODULES = ('app.services.catalogue',)\n"
        "def f():\n"
        "    return importlib.import_module('app.store.models')\n",
        "utf-8",
    )
    facts = _import_facts(source, {"app.services.catalogue", "app.store.models"})
    assert Import("app.ui.main_window.MainWindow", typing_only=True) in facts
    assert Import("app.services.catalogue", dynamic=True) in facts
    assert Import("app.store.models", dynamic=True) in facts
    assert _violations("app.formats.x", _imports(source, {"app.store.models"}))
