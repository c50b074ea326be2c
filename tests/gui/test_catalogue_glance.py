"""The window's first catalogue rows come from a plain sqlite3 glance (no SQLAlchemy import
before they are visible), agree with the catalogue service, and never go stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.services.catalogue_glance import DB_FILE_NAME, first_page
from app.ui.main_window import MainWindow
from tests.gui.conftest import add_item, make_csv

ROOT = Path(__file__).resolve().parents[2]


def test_the_glance_reads_the_catalogues_own_file() -> None:
    from app.store.db import DB_FILE_NAME as STORE_FILE

    assert DB_FILE_NAME == STORE_FILE


def test_the_glance_agrees_with_the_service(services: Any, tmp_path: Path) -> None:
    parent = add_item(services, make_csv(tmp_path / "a", "a.csv", rows=40), title="Air")
    add_item(services, make_csv(tmp_path / "b", "b.csv", rows=3), title="Bees", license="MIT")
    from app.domain.states import Kind

    add_item(
        services,
        make_csv(tmp_path / "c", "labels.csv", rows=2),
        title="Labels",
        kind=Kind.ANNOTATION,
        parent_id=parent.id,
    )
    glance = first_page(services.ctx.data_dir, 2)
    assert glance is not None
    assert glance.total == services.catalogue.count() == 3
    expected = services.catalogue.list_items(limit=2)
    assert [asdict(g) for g in glance.items] == [asdict(e) for e in expected]
    every = first_page(services.ctx.data_dir, 10)
    assert every is not None
    assert [asdict(g) for g in every.items] == [
        asdict(e) for e in services.catalogue.list_items(limit=10)
    ]


def test_no_catalogue_or_a_foreign_file_means_no_glance(tmp_path: Path) -> None:
    assert first_page(tmp_path, 10) is None
    assert not (tmp_path / DB_FILE_NAME).exists()  # a glance never creates the database
    import sqlite3

    conn = sqlite3.connect(tmp_path / DB_FILE_NAME)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT)")
    conn.commit()
    conn.close()
    assert first_page(tmp_path, 10) is None


def test_first_rows_from_the_glance_then_the_service(
    qtbot: Any, services: Any, theme: Any, tmp_path: Path
) -> None:
    add_item(services, make_csv(tmp_path / "a", "a.csv"), title="First")
    win = MainWindow(services, theme, check_registry_on_start=False, defer_catalogue=True)
    qtbot.addWidget(win)
    win.show()
    view = win.catalogue
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=5000)
    assert view.source.glanced
    assert view.model.item_at(0).title == "First"
    qtbot.waitUntil(lambda: view.source.built, timeout=10_000)  # warmed up in the background

    # Added after the glance: the next refresh asks the service, not the old glance.
    item = add_item(services, make_csv(tmp_path / "b", "b.csv"), title="Second")
    view.item_added(item)
    assert [view.model.item_at(r).title for r in range(view.model.rowCount())] == [
        "First",
        "Second",
    ]


def test_rows_are_visible_before_sqlalchemy_is_imported(services: Any, tmp_path: Path) -> None:
    """In a fresh process, like a real start: the GUI thread paints the rows without
    importing SQLAlchemy (background workers may already be loading it)."""
    for i in range(3):
        add_item(services, make_csv(tmp_path / f"d{i}", f"d{i}.csv"), title=f"Set {i}")
    data_dir = services.ctx.data_dir
    services.ctx.close()
    code = """
import json, sys, threading
on_gui_thread = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "sqlalchemy":
            on_gui_thread.append(threading.current_thread() is threading.main_thread())
        return None
sys.meta_path.insert(0, Spy())
from PySide6.QtCore import QEvent, QObject
from pathlib import Path
from app.services.context import ServiceContext
from app.ui.app import GuiSession, ensure_app
class Rows(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and w.catalogue.model.rowCount() > 0:
            print(json.dumps({
                "rows": w.catalogue.model.rowCount(),
                "sqlalchemy_on_gui_thread": any(on_gui_thread),
            }), flush=True)
            import os; os._exit(0)
        return False
app = ensure_app()
ctx = ServiceContext(Path(sys.argv[1]), registry_url="http://127.0.0.1:9")
w = GuiSession(ctx, app, debug=False).build_window()
probe = Rows(); w.catalogue.table.viewport().installEventFilter(probe)
w.show()
app.exec()
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stderr[-2000:]
    seen = json.loads(lines[-1])
    assert seen == {"rows": 3, "sqlalchemy_on_gui_thread": False}
