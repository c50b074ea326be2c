"""Run the real `contributor-desk` CLI in a subprocess, as a user or a script would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


# As root, permission bits do not stop reads; dropping the DAC-override capabilities from the
# bounding set makes a root process obey them, so "permission denied" cases are tested for real.
NO_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def run_cli(
    *args: str | Path,
    data_dir: Path,
    timeout: float = 120,
    obey_permissions: bool = False,
    **popen: Any,
) -> Result:
    prefix = NO_DAC_OVERRIDE if obey_permissions and os.geteuid() == 0 else []
    env = dict(os.environ)
    env["CONTRIBUTOR_DESK_DATA_DIR"] = str(data_dir)
    env.setdefault("PYTHONPATH", str(ROOT))
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "app", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        **popen,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
