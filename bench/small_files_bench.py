"""10,000 files of 4 KB against one 40 MB file: submit + upload until accepted, same registry.

Target: the small files take at most 3x the time of the single file — small blobs travel in
batches (POST /v1/uploads/batch), not as one tus upload (two round trips) each.
Catalogue add (hashing) is done before and not timed; each side is a fresh contribution.

Run: .venv/bin/python bench/small_files_bench.py [--files 10000] [--file-kb 4]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from submit_bench import (  # noqa: E402
    cpu_seconds,
    new_desk,
    registry_proc,
    submit_and_upload,
    write_file,
)

from app.services.catalogue import CatalogueService, ImportRequest  # noqa: E402


def _py_spy(out: str, pid: int, rate: int, wall: bool) -> subprocess.Popen[bytes]:
    """py-spy sampling the registry (pip install py-spy; needs ptrace rights) without pausing
    it; only threads holding the GIL unless `wall` (then waits on the GIL count too)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "--nonblocking", "--format", "raw", "--rate", str(rate)]
    cmd += [] if wall else ["--gil"]
    cmd += ["-o", out, "--pid", str(pid)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the timed run starts
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--file-kb", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument(
        "--py-spy",
        metavar="OUT",
        help="profile the registry during the small-files run with py-spy (raw format to OUT)",
    )
    ap.add_argument("--py-spy-rate", type=int, default=250, help="samples per second")
    ap.add_argument(
        "--py-spy-wall", action="store_true", help="sample every thread, not only GIL holders"
    )
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="small-files-bench-"))
    size = args.file_kb * 1024
    small_dir, big_dir = workdir / "small", workdir / "big"
    small_dir.mkdir()
    for i in range(args.files):
        (small_dir / f"d{i // 1000:02d}").mkdir(exist_ok=True)
        data = (f"{i:08d}".encode() * (size // 8 + 1))[:size]
        (small_dir / f"d{i // 1000:02d}" / f"f{i:05d}.txt").write_bytes(data)
    write_file(big_dir / "one.bin", args.files * size, seed=424242)
    try:
        with registry_proc(workdir) as (url, pid):
            ctx = new_desk(workdir, "desk", url)
            cat = CatalogueService(ctx)
            t = time.perf_counter()
            small = cat.add(ImportRequest(paths=[small_dir], title="small files")).id
            big = cat.add(ImportRequest(paths=[big_dir], title="one file")).id
            print(f"catalogue add of both (not timed below): {time.perf_counter() - t:.1f} s")
            runs: dict[str, tuple[float, int]] = {}
            cpu: dict[str, tuple[float, float]] = {}  # (client, registry) CPU seconds
            for name, item in (("big", big), ("small", small)):
                spy = (
                    _py_spy(args.py_spy, pid, args.py_spy_rate, args.py_spy_wall)
                    if name == "small" and args.py_spy
                    else None
                )
                reg0, own0 = cpu_seconds(pid), cpu_seconds()
                runs[name] = submit_and_upload(ctx, item, args.concurrency)
                cpu[name] = (cpu_seconds() - own0, cpu_seconds(pid) - reg0)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
            (big_s, big_bytes), (small_s, small_bytes) = runs["big"], runs["small"]
            ctx.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"1 file of {big_bytes / 1e6:.0f} MB:     {big_s:7.2f} s")
    print(f"{args.files} files of {size // 1024} KB: {small_s:7.2f} s ({small_bytes / 1e6:.0f} MB)")
    print(f"ratio small/big: {small_s / big_s:.2f} (target <= 3)")
    for name in ("big", "small"):
        own, reg = cpu[name]
        print(f"CPU s, {name}: client {own:.1f} + registry {reg:.1f} = {own + reg:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
