"""End-to-end submit of a mixed dataset to a local registry, against `curl -T` of the same bytes.

1. Generates a mixed dataset (--size-gb, default 2): a few large files, medium ones, and small
   ones, every file with distinct content.
2. Starts `contributor-registry serve --enable-bench-put` on loopback.
3. Baseline: `cat <all files> | curl -T - <registry>/v1/bench/put` — the same bytes, one stream,
   to the same server, written to disk and fsynced by it like a tus PATCH.
4. Ours: `submit` (sign + create) and the upload queue until the contribution is accepted
   (tus with 16 MiB chunks and per-chunk sha256, small blobs batched), wall time.
5. The same data submitted by a second user (another key): the larger blobs are proved held
   (docs/protocol.md, "Proof of possession"), the small ones (<= 256 KiB) uploaded; prints
   the bytes uploaded (expected: the small files' bytes only).

Prints throughput and the ratio (target: ours >= 0.75 x curl).
Run: .venv/bin/python bench/submit_bench.py [--size-gb 2] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.services.catalogue import CatalogueService, ImportRequest  # noqa: E402
from app.services.context import ServiceContext  # noqa: E402
from app.services.identity import IdentityService  # noqa: E402
from app.services.submit import SubmitService  # noqa: E402
from app.services.uploads import QueueOptions, UploadQueue  # noqa: E402

PASSPHRASE = "bench passphrase, not a secret"
MiB = 1024 * 1024


def write_file(path: Path, size: int, seed: int) -> None:
    """Distinct, incompressible-enough content, written fast (one random 1 MiB block reused
    with a per-block counter so every block and every file differs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = bytearray(hashlib.sha256(str(seed).encode()).digest() * (MiB // 32))
    with open(path, "wb") as fh:
        left, n = size, 0
        while left > 0:
            base[:16] = seed.to_bytes(8, "big") + n.to_bytes(8, "big")
            take = min(left, MiB)
            fh.write(base[:take])
            left -= take
            n += 1


def make_mixed_dataset(root: Path, total: int, seed: int = 1) -> list[Path]:
    """~50% in 2 large files, ~35% in 32 MiB files, ~15% in 64 KiB files."""
    files: list[Path] = []
    large = int(total * 0.5) // 2
    for i in range(2):
        files.append(root / f"large-{i}.bin")
        write_file(files[-1], large, seed * 1000 + i)
    medium_n = max(1, int(total * 0.35) // (32 * MiB))
    for i in range(medium_n):
        files.append(root / "medium" / f"m-{i:03d}.bin")
        write_file(files[-1], 32 * MiB, seed * 1000 + 100 + i)
    rest = total - 2 * large - medium_n * 32 * MiB
    small_n = max(1, rest // (64 * 1024))
    for i in range(small_n):
        files.append(root / "small" / f"s-{i:05d}.bin")
        write_file(files[-1], 64 * 1024, seed * 100000 + i)
    return files


@contextmanager
def registry(workdir: Path) -> Iterator[str]:
    with registry_proc(workdir) as (url, _pid):
        yield url


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (default: this one) — what the work costs on an
    idle machine, whatever the load of the shared one did to the wall time."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def registry_proc(workdir: Path) -> Iterator[tuple[str, int]]:
    """A registry on loopback: (its URL, its process id)."""
    log = open(workdir / "registry.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "registry.cli", "serve", "--port", "0",
            "--db", f"sqlite:///{workdir / 'registry.sqlite3'}",
            "--blobs", str(workdir / "blobs"), "--enable-bench-put",
            "--rate-limit", "1000000",
        ],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().removeprefix("listening on ")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    time.sleep(1.0)
    try:
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def curl_put(url: str, files: list[Path]) -> float:
    """Seconds for `cat files | curl -T - url/v1/bench/put`."""
    start = time.perf_counter()
    cat = subprocess.Popen(["cat", *map(str, files)], stdout=subprocess.PIPE)
    subprocess.run(
        ["curl", "-sS", "-f", "-o", "/dev/null", "-T", "-", f"{url}/v1/bench/put"],
        stdin=cat.stdout,
        check=True,
    )
    assert cat.stdout is not None
    cat.stdout.close()
    cat.wait()
    return time.perf_counter() - start


def new_desk(workdir: Path, name: str, url: str) -> ServiceContext:
    ctx = ServiceContext(workdir / name, url)
    IdentityService(ctx).init(PASSPHRASE, use_key_file=True)
    return ctx


def submit_and_upload(ctx: ServiceContext, item: int, concurrency: int) -> tuple[float, int]:
    """(seconds for submit + upload until accepted, bytes the queue had to upload)."""
    start = time.perf_counter()
    SubmitService(ctx).submit(item, passphrase=PASSPHRASE)
    queue = UploadQueue(
        ctx, options=QueueOptions.from_settings(ctx, concurrency=concurrency),
        passphrase=PASSPHRASE,
    )  # fmt: skip
    snap = queue.run()
    queue.close()
    elapsed = time.perf_counter() - start
    state = CatalogueService(ctx).get(item).summary.state.value
    if state != "accepted":
        raise SystemExit(f"contribution ended {state}: {snap}")
    return elapsed, sum(c.total_bytes for c in snap.contributions if c.item_id == item)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the baseline")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="submit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    total = int(args.size_gb * 1024 * MiB)
    data = workdir / "dataset"
    t = time.perf_counter()
    files = make_mixed_dataset(data, total)
    size = sum(f.stat().st_size for f in files)
    print(f"dataset: {len(files)} files, {size / MiB:.0f} MiB ({time.perf_counter() - t:.1f} s)")
    try:
        with registry_proc(workdir) as (url, pid):
            reg0 = cpu_seconds(pid)
            curl_s = curl_put(url, files)
            curl_reg_cpu = cpu_seconds(pid) - reg0
            ctx = new_desk(workdir, "desk-a", url)
            t = time.perf_counter()
            item = CatalogueService(ctx).add(ImportRequest(paths=[data], title="bench")).id
            print(f"catalogue add (hashing, not timed below): {time.perf_counter() - t:.1f} s")
            reg0, own0 = cpu_seconds(pid), cpu_seconds()
            ours_s, sent = submit_and_upload(ctx, item, args.concurrency)
            ours_reg_cpu, ours_cpu = cpu_seconds(pid) - reg0, cpu_seconds() - own0
            ctx.close()
            again = new_desk(workdir, "desk-b", url)
            item_b = CatalogueService(again).add(ImportRequest(paths=[data], title="again")).id
            again_s, again_bytes = submit_and_upload(again, item_b, args.concurrency)
            again.close()
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    curl_mbs = size / MiB / curl_s
    ours_mbs = sent / MiB / ours_s
    print(f"curl -T (same bytes, one stream): {curl_s:7.2f} s  {curl_mbs:8.1f} MiB/s")
    print(f"submit + upload (until accepted): {ours_s:7.2f} s  {ours_mbs:8.1f} MiB/s")
    print(f"ratio ours/curl throughput: {ours_mbs / curl_mbs:.2f} (target >= 0.75)")
    print(f"CPU s, curl run: registry {curl_reg_cpu:.1f} (curl and cat not counted)")
    print(f"CPU s, ours: client {ours_cpu:.1f} + registry {ours_reg_cpu:.1f}")
    print(
        f"same data, second key (larger blobs proved): {again_bytes} bytes uploaded "
        f"in {again_s:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
