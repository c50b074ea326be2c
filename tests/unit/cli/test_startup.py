"""CLI start-up stays cheap: building the parser must not import the heavy stacks.

Every `contributor-desk` call pays for what `app.cli.main` imports before dispatching, so command
modules import their services inside the handlers (`list` must answer in well under a second).
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "pyarrow", "PIL", "PySide6", "cryptography", "requests")


def test_building_the_parser_imports_no_heavy_module() -> None:
    code = (
        "import sys; from app.cli.main import build_parser; build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"imported at CLI start-up: {out} (import them inside the handler)"
