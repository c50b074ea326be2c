"""End-to-end submit of a mixed dataset to a local registry, beside `curl -T` of the same bytes
to the same server and the disk's durable write limit.

1. Generates a mixed dataset (--size-gb, default 1): a few large files, medium ones, and small
   ones, every file with distinct content.
2. Every round (--rounds, default 5) starts a fresh `contributor-registry serve
   --enable-bench-put` on loopback and times, one after the other:
   - ours: a fresh desk catalogues the dataset (hashing, not timed), then `submit` (sign +
     create) and the upload queue until the contribution is accepted (tus with 16 MiB chunks
     and per-chunk sha256, small blobs batched);
   - curl: `cat <all files> | curl -T - <registry>/v1/bench/put`: the same bytes, one stream,
     to the same server (received like a tus PATCH, page cache + one fsync, no hashing): what
     this server can take in from a client that does nothing else;
   - dd: `dd if=/dev/zero bs=1M oflag=direct` of the same size into the registry's folder: the
     disk's durable write limit.
   `sync` runs (untimed) between them; the load average is printed before and after each.
3. After the last round, the same data is submitted by a second user (another key): the larger
   blobs are proved held (docs/protocol.md, "Proof of possession"), the small ones (<= 256 KiB)
   uploaded; prints the bytes uploaded (expected: the small files' bytes only).

Prints min/median/max of each, ours/curl (target: >= 0.95) and ours/dd, and the CPU seconds
per GiB of the client (this process) and the registry process.
Run: .venv/bin/python bench/submit_bench.py [--size-gb 1] [--rounds 5] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import statistics
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


REGISTRY_ROOT = [ROOT]  # --registry-root: the checkout the registry runs from


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
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=REGISTRY_ROOT[0],
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


def dd_direct(folder: Path, size: int) -> float:
    """Seconds for dd to write `size` bytes of zeros into `folder` with O_DIRECT."""
    target = folder / "dd.bin"
    start = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={-(-size // MiB)}", "oflag=direct"],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def spread(values: list[float]) -> str:
    return f"{min(values):7.1f} {statistics.median(values):7.1f} {max(values):7.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--py-spy", type=Path, default=None, help="record the registry (raw stacks)")
    ap.add_argument(
        "--registry-root",
        type=Path,
        default=ROOT,
        help="run the registry from this checkout (A/B against another version)",
    )
    args = ap.parse_args()
    REGISTRY_ROOT[0] = args.registry_root
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the baseline")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="submit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    total = int(args.size_gb * 1024 * MiB)
    data = workdir / "dataset"
    t = time.perf_counter()
    files = make_mixed_dataset(data, total)
    size = sum(f.stat().st_size for f in files)
    gib = size / 2**30
    print(f"dataset: {len(files)} files, {size / MiB:.0f} MiB ({time.perf_counter() - t:.1f} s)")
    rates: dict[str, list[float]] = {"ours": [], "curl": [], "dd-direct": []}
    cpu: dict[str, list[float]] = {"ours client": [], "ours registry": [], "curl registry": []}
    loads: list[float] = []
    again_bytes, again_s = -1, 0.0
    try:
        for r in range(args.rounds):
            round_dir = workdir / f"round-{r}"
            round_dir.mkdir()
            cells = []
            with registry_proc(round_dir) as (url, pid):
                ctx = new_desk(round_dir, "desk-a", url)
                item = CatalogueService(ctx).add(ImportRequest(paths=[data], title="bench")).id
                spy = None
                if args.py_spy is not None and r == args.rounds - 1:
                    spy = subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record", "--pid", str(pid), "--format", "raw", "--threads",
                            "--rate", "200", "--output", str(args.py_spy.resolve()),
                        ],
                        stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                    time.sleep(1.0)
                for target in ("ours", "curl", "dd-direct"):
                    if spy is not None and target != "ours":
                        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                        spy.wait(60)
                        spy = None
                    subprocess.run(["sync"], check=True)
                    before = os.getloadavg()[0]
                    reg0, own0 = cpu_seconds(pid), cpu_seconds()
                    if target == "ours":
                        seconds, sent = submit_and_upload(ctx, item, args.concurrency)
                        if sent != size:
                            raise SystemExit(f"uploaded {sent} bytes, expected {size}")
                        cpu["ours client"].append((cpu_seconds() - own0) / gib)
                        cpu["ours registry"].append((cpu_seconds(pid) - reg0) / gib)
                    elif target == "curl":
                        seconds = curl_put(url, files)
                        cpu["curl registry"].append((cpu_seconds(pid) - reg0) / gib)
                    else:
                        seconds = dd_direct(round_dir / "blobs", size)
                    after = os.getloadavg()[0]
                    loads += [before, after]
                    rates[target].append(size / MiB / seconds)
                    cells.append(
                        f"{target} {rates[target][-1]:6.1f} MiB/s (load {before:.1f}/{after:.1f})"
                    )
                ctx.close()
                print(f"round {r + 1}: " + "  ".join(cells), flush=True)
                if r == args.rounds - 1:
                    again = new_desk(round_dir, "desk-b", url)
                    item_b = (
                        CatalogueService(again).add(ImportRequest(paths=[data], title="again")).id
                    )
                    again_s, again_bytes = submit_and_upload(again, item_b, args.concurrency)
                    again.close()
            shutil.rmtree(round_dir, ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"\n{size / MiB:.0f} MiB in {len(files)} files, {args.rounds} rounds; load average "
        f"(1 min) {min(loads):.2f}-{max(loads):.2f} during the runs"
    )
    print("  MiB/s                       min  median     max")
    print(f"  ours (submit until accepted) {spread(rates['ours'])}")
    print(f"  curl -T (server's intake)    {spread(rates['curl'])}")
    print(f"  dd oflag=direct (disk limit) {spread(rates['dd-direct'])}")
    print(f"  ours / curl = {med['ours'] / med['curl']:.2f}x (target >= 0.95)")
    print(f"  ours / dd oflag=direct = {med['ours'] / med['dd-direct']:.2f}x")
    print(
        "  CPU s per GiB (median): "
        + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in cpu.items())
    )
    print(
        f"same data, second key (larger blobs proved): {again_bytes} bytes uploaded "
        f"in {again_s:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
