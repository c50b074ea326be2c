"""Help ▸ About: version, the registry in use, and the bundled components' licenses."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel

from app import __version__
from app.services.components import BUNDLED_LICENSES, bundled_components


def test_help_about_shows_version_registry_and_qt_under_the_lgpl(window: Any, qtbot: Any) -> None:
    about = next(a for a in window.menuBar().actions() if a.text() == "&Help").menu().actions()[0]
    about.trigger()
    dialog = window.about_dialog
    qtbot.waitExposed(dialog)
    assert __version__ in dialog.findChild(QLabel, "aboutVersion").text()
    assert window.services.ctx.registry_url in dialog.findChild(QLabel, "aboutRegistry").text()
    names = {n.lower().replace("_", "-") for n in dialog.component_names()}
    assert {"pyside6-essentials", "shiboken6", "pyyaml", "python"} <= names
    pyside = next(n for n in dialog.component_names() if n.lower().startswith("pyside6"))
    assert "LGPL-3.0" in dialog.license_of(pyside)
    assert "psycopg-binary" not in names and "uvloop" not in names
    assert "pyarrow" not in names  # a test dependency only: Parquet is read in pure Python
    dialog.reject()


def test_a_frozen_app_reads_the_list_written_at_build_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"name": "Qt for Python", "version": "6.0", "license": "LGPL-3.0-only"}]
    (tmp_path / BUNDLED_LICENSES).write_text(json.dumps(rows), encoding="utf-8")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    (component,) = bundled_components(tmp_path)
    assert (component.name, component.license) == ("Qt for Python", "LGPL-3.0-only")
    (tmp_path / BUNDLED_LICENSES).unlink()
    assert bundled_components(tmp_path) == []  # a broken bundle says so instead of guessing
