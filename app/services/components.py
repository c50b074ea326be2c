"""The third-party components the app ships with, and their licenses (Help ▸ About).

A frozen bundle carries the list as resources/bundled-licenses.json, written at build time by
packaging/contributor-desk.spec from the installed distributions' metadata; run from source,
the same list is computed from the environment.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BUNDLED_LICENSES = "bundled-licenses.json"
# Installed with the registry extra but left out of the bundle (server deployments only).
NOT_BUNDLED = frozenset(
    {"psycopg", "psycopg-binary", "psycopg-pool", "uvloop", "httptools", "websockets",
     "watchfiles", "python-dotenv", "numpy"}
)  # fmt: skip


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    license: str


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def license_of(dist: metadata.Distribution) -> str:
    """SPDX expression when the metadata has one, else the license classifiers or field."""
    meta = dist.metadata
    expression = meta["License-Expression"] if "License-Expression" in meta else None
    if expression:
        return str(expression)
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::") and c.split("::")[-1].strip() != "OSI Approved"
    ]
    if classifiers:
        return "; ".join(classifiers)
    text = ((meta["License"] if "License" in meta else "") or "").strip()
    return text.splitlines()[0][:80] if text else "see the distribution's license files"


def _marker_holds(marker: str) -> bool:
    try:
        from packaging.markers import Marker
    except ImportError:  # keep the component when the marker cannot be evaluated
        return True
    return bool(Marker(marker).evaluate({"extra": ""}))


def runtime_distributions(
    root: str = "contributor-desk", extras: tuple[str, ...] = ("registry",)
) -> list[metadata.Distribution]:
    """Installed distributions `root` (with `extras`) needs at run time, transitively."""
    seen: dict[str, metadata.Distribution] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        key = _normalise(name)
        if key in seen or key in NOT_BUNDLED:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = dist
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            match = re.match(r"\s*([A-Za-z0-9._-]+)(\[([^\]]*)\])?", spec)
            if match is None:
                continue
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if extra is not None:
                if extra.group(1) not in wanted:
                    continue
            elif marker.strip() and not _marker_holds(marker.strip()):
                continue
            sub = tuple(e.strip() for e in (match.group(3) or "").split(",") if e.strip())
            todo.append((match.group(1), sub))
    return sorted(seen.values(), key=lambda d: _normalise(d.metadata["Name"]))


def collect_components() -> list[Component]:
    """The components of this installation, Python itself included."""
    found = [
        Component(d.metadata["Name"], d.version, license_of(d)) for d in runtime_distributions()
    ]
    found.append(Component("Python", platform.python_version(), "PSF-2.0"))
    return found


def components_document() -> str:
    """The JSON written into a bundle at build time."""
    return json.dumps([c.__dict__ for c in collect_components()], indent=1)


def bundled_components(resources: Path) -> list[Component]:
    """From the bundle's list when frozen; computed from the environment otherwise."""
    path = resources / BUNDLED_LICENSES
    if getattr(sys, "frozen", False) or path.is_file():
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            return [Component(str(r["name"]), str(r["version"]), str(r["license"])) for r in rows]
        except (OSError, ValueError, KeyError, TypeError):
            return []
    return collect_components()
