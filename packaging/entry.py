"""Entry point of the PyInstaller bundle: the desktop app, or its embedded demo registry.

A frozen bundle has no Python interpreter to run `python -c ...`, so the app starts its demo
registry (`--demo`, `--self-test`) as `<bundle executable> --run-registry serve ...`
(app.services.demo). That switch is handled here, before the app's own command line, and
never shown in `--help`.
"""

from __future__ import annotations

import multiprocessing
import sys

REGISTRY_SWITCH = "--run-registry"


def main() -> int:
    multiprocessing.freeze_support()
    if len(sys.argv) > 1 and sys.argv[1] == REGISTRY_SWITCH:
        from registry.cli import main as registry_main

        sys.argv = [sys.argv[0], *sys.argv[2:]]
        return int(registry_main() or 0)
    from app.cli.main import main as app_main

    return int(app_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
