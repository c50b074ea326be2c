"""Format detection on a 1,000,000-row CSV: peak memory and time, each against a baseline.

Memory: peak RSS of a child process running detect(), against a child that only imports
the same modules (so the difference is what detection itself holds). Time: detect() against
`wc -l` on the same file, measured in the same run.

Run: .venv/bin/python bench/detect_memory_bench.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_DETECT_CHILD = """
import json, resource, sys, time
from pathlib import Path
before = set(sys.modules)
from app.formats import detect
start = time.perf_counter()
report = detect(Path(sys.argv[1]))
elapsed = time.perf_counter() - start
part = report.parts[0]
print(json.dumps({
    "seconds": elapsed,
    "rows": part.record_count,
    "problems": len(part.problems),
    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "modules": sorted(m for m in set(sys.modules) - before if "." not in m),
}))
"""

_BASELINE_CHILD = """
import importlib, json, resource, sys
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_csv(path: Path, rows: int) -> None:
    """Mixed column types, like an exported table; written in blocks to stay quick."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("id,amount,label,flag,comment\n")
        block: list[str] = []
        for i in range(rows):
            block.append(
                f"{i},{i * 0.37:.4f},label-{i % 97},{'true' if i % 3 else 'false'},"
                f'"free text, with a comma {i % 1000}"\n'
            )
            if len(block) == 50_000:
                fh.write("".join(block))
                block.clear()
        fh.write("".join(block))


def run_child(code: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    wc = shutil.which("wc")
    if wc is None:
        print("wc not found; the time baseline needs it", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="detect-bench-") as tmp:
        csv_path = Path(tmp) / "table.csv"
        write_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6

        start = time.perf_counter()
        wc_out = subprocess.run([wc, "-l", str(csv_path)], check=True, capture_output=True)
        wc_seconds = time.perf_counter() - start
        wc_lines = int(wc_out.stdout.split()[0])

        detected = run_child(_DETECT_CHILD, str(csv_path))
        modules = detected["modules"]
        assert isinstance(modules, list)
        baseline = run_child(_BASELINE_CHILD, json.dumps(["app.formats", *modules]))

    seconds = float(str(detected["seconds"]))
    rss = int(str(detected["maxrss_kb"])) / 1024
    base_rss = int(str(baseline["maxrss_kb"])) / 1024
    print(f"file: {args.rows:,} rows, {size_mb:.1f} MB; wc -l counted {wc_lines:,} lines")
    print(f"detect(): {detected['rows']:,} rows, {detected['problems']} problems")
    print(
        f"time    detect {seconds:8.3f} s | wc -l {wc_seconds:8.3f} s | "
        f"ratio {seconds / wc_seconds:6.1f}x | {size_mb / seconds:.1f} MB/s"
    )
    print(
        f"peak RSS detect {rss:8.1f} MB | imports only {base_rss:8.1f} MB | "
        f"detection adds {rss - base_rss:6.1f} MB (file is {size_mb:.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
