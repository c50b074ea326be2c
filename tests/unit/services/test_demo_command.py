"""How the app starts its demo registry: `python -c` from source, a switch when frozen."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from app.services import demo


def test_from_source_the_registry_runs_in_a_child_python() -> None:
    cmd = demo._registry_command("serve", "--port", "0")
    assert cmd[:2] == [sys.executable, "-c"] and cmd[-3:] == ["serve", "--port", "0"]


def test_a_frozen_bundle_runs_itself_with_the_registry_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    cmd = demo._registry_command("seed-demo", "--db", "sqlite:///x")
    assert cmd == [sys.executable, "--run-registry", "seed-demo", "--db", "sqlite:///x"]
    entry = Path(__file__).resolve().parents[3] / "packaging" / "entry.py"
    spec = importlib.util.spec_from_file_location("bundle_entry", entry)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert cmd[1] == module.REGISTRY_SWITCH  # the bundle's entry point handles this switch
