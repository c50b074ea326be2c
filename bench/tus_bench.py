"""Upload throughput of one large blob over loopback, beside the machine's durable write limit:
our tus endpoint, the Node tus server (@tus/server + @tus/file-store), `curl -T` into a plain
PUT handler on our server, and `dd oflag=direct` of the same size into the same folder.

The same client (a minimal tus client on http.client: POST, then PATCHes of --chunk-mib with
Content-Length, streamed from the file with readinto) uploads to both tus servers. Rounds
alternate (ours, node, curl, dd-direct, dd-fsync, ours, ...) so background load hits all alike;
every round prints the load average before and after it, and `sync` runs (untimed) between
targets so no target pays for another's write-back.

- ours-tus: whole-blob sha256, bearer-token auth per request, a durable offset in the DB, the
  bytes on disk (fdatasync) before the last PATCH is answered, the blob published atomically;
- node-tus: writes through the page cache and never fsyncs (its files are deleted after the
  round, so its bytes may never reach the disk);
- curl-put: page cache + one fsync at the end, no hashing, no database;
- dd-direct: `dd if=/dev/zero bs=1M oflag=direct` into the same folder: the durable write limit
  (the target is ours >= 0.9x of it); dd-fsync (`conv=fsync`, page cache then one fsync) is
  context.

CPU seconds per GiB received are printed for the server process (user + system, all its threads:
the registry for ours-tus and curl-put, node for node-tus) and for the client (this process).
Beside them: one thread's sha256 rate over the blob in memory (no receiver that hashes the
whole blob as one stream can go faster) and the CPU ceiling of ours on this machine's cores
(cores / (registry + client CPU per byte)).

    .venv/bin/python bench/tus_bench.py [--size-mib 1024] [--rounds 5] [--chunk-mib 32]
        [--skip-node] [--only ours-tus,dd-direct] [--py-spy OUT.txt]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from app.manifest.canonical import Manifest, ManifestEntry  # noqa: E402
from app.signing import dsse  # noqa: E402
from app.signing.identity import public_hex  # noqa: E402
from app.signing.statement import build_statement  # noqa: E402

NODE_DIR = Path(__file__).resolve().parent / "node-tus"
READ = 4 * 1024 * 1024
TARGETS = ("ours-tus", "node-tus", "curl-put", "dd-direct", "dd-fsync")
SERVED = ("ours-tus", "node-tus", "curl-put")  # CPU of the server process is printed


def start(cmd: list[str], log: Path, cwd: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, cwd=cwd)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"{cmd[0]} did not start: {line!r}; see {log}")
    return proc, line.split("listening on ", 1)[1].strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict
) -> http.client.HTTPResponse:
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp


def sign_in(base: str, key: Ed25519PrivateKey) -> str:
    import json

    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    pub = public_hex(key)
    h = {"Content-Type": "application/json"}
    conn.request("POST", "/v1/auth/challenge", json.dumps({"publicKey": pub}), h)
    nonce = json.loads(conn.getresponse().read())["nonce"]
    sig = base64.b64encode(key.sign(b"contributor-desk-auth-v1\n" + nonce.encode())).decode()
    body = json.dumps({"publicKey": pub, "nonce": nonce, "signature": sig})
    conn.request("POST", "/v1/auth/token", body, h)
    token = json.loads(conn.getresponse().read())["token"]
    conn.close()
    return str(token)


def create_contribution(base: str, key: Ed25519PrivateKey, token: str, sha: str, size: int) -> str:
    import json

    manifest = Manifest.from_entries([ManifestEntry(path="blob.bin", size=size, sha256=sha)])
    data = manifest.canonical_bytes()
    statement = build_statement(
        manifest_digest=hashlib.sha256(data).hexdigest(),
        registry=base,
        datanet="open-data",
        title="bench",
        kind="dataset",
        parent=None,
        license="CC0-1.0",
        root=manifest.root,
    )
    env = dsse.sign(statement, dsse.PAYLOAD_TYPE_INTOTO, [key])
    body = {
        "envelope": env.to_dict(),
        "manifest": base64.b64encode(data).decode(),
        "metadata": {
            "datanet": "open-data",
            "title": "bench",
            "kind": "dataset",
            "parent": None,
            "license": "CC0-1.0",
        },
    }
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    conn.request(
        "POST",
        "/v1/contributions",
        json.dumps(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    resp = conn.getresponse()
    out = json.loads(resp.read())
    conn.close()
    return str(out["id"])


def tus_upload(create_url: str, path: Path, size: int, chunk: int, headers: dict) -> float:
    """Our minimal tus client: returns seconds from POST to the last PATCH's answer."""
    u = urlsplit(create_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    buf = bytearray(READ)
    view = memoryview(buf)
    t0 = time.perf_counter()
    resp = request(
        conn,
        "POST",
        u.path,
        None,
        {**headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(size)},
    )
    assert resp.status == 201, (resp.status, resp.reason)
    upath = urlsplit(resp.getheader("Location") or "").path
    offset = 0
    with path.open("rb", buffering=0) as fh:
        while offset < size:
            n = min(chunk, size - offset)
            conn.putrequest("PATCH", upath, skip_accept_encoding=True)
            for k, v in {
                **headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(n),
            }.items():
                conn.putheader(k, v)
            conn.endheaders()
            left = n
            while left:
                got = fh.readinto(view[: min(READ, left)])
                conn.send(view[:got])
                left -= got
            resp = conn.getresponse()
            resp.read()
            if resp.status != 204:
                raise SystemExit(f"PATCH failed: {resp.status} {resp.reason}")
            offset = int(resp.getheader("Upload-Offset") or 0)
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def curl_put(url: str, path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        ["curl", "-sS", "-f", "-o", "/dev/null", "-H", "Expect:", "-T", str(path), url],
        check=True,
    )
    return time.perf_counter() - t0


def dd(target: Path, size_mib: int, flag: str) -> float:
    """Seconds for dd to write size_mib MiB of zeros to `target` with oflag=direct or
    conv=fsync (the file is removed afterwards, untimed)."""
    t0 = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size_mib}", flag],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - t0
    target.unlink()
    return elapsed


def sha256_seconds(seed: bytes, size: int) -> float:
    """Seconds for one hashlib.sha256 over `size` bytes in memory (1 MiB updates, like the
    registry's buffers): the ceiling of any receiver that hashes the whole blob as one stream."""
    view = memoryview(seed)
    h = hashlib.sha256()
    t0 = time.perf_counter()
    left = size
    while left:
        n = min(len(seed), left)
        for i in range(0, n, 1 << 20):
            h.update(view[i : min(i + (1 << 20), n)])
        left -= n
    return time.perf_counter() - t0


def spread(values: list[float]) -> str:
    return f"{min(values):6.0f} {statistics.median(values):6.0f} {max(values):6.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk-mib", type=int, default=32)
    ap.add_argument("--skip-node", action="store_true")
    ap.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    ap.add_argument("--py-spy", type=Path, default=None, help="record the registry (raw stacks)")
    ap.add_argument(
        "--registry-root",
        type=Path,
        default=ROOT,
        help="run the registry from this checkout (A/B against another version, e.g. a "
        "`git archive` of an older commit)",
    )
    args = ap.parse_args()
    only = [t for t in TARGETS if t in args.only.split(",")]
    if args.skip_node and "node-tus" in only:
        only.remove("node-tus")
    size = args.size_mib * 1024 * 1024
    chunk = args.chunk_mib * 1024 * 1024
    out = ROOT / "bench" / "out"  # git-ignored; a fresh clone does not have it yet
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tus-bench-", dir=out))
    procs: list[subprocess.Popen[str]] = []
    try:
        blob = work / "blob.bin"
        seed = os.urandom(64 * 1024 * 1024)
        h = hashlib.sha256()
        with blob.open("wb") as fh:
            left = size
            while left:
                part = seed[: min(len(seed), left)]
                fh.write(part)
                h.update(part)
                left -= len(part)
        sha = h.hexdigest()
        ours, base = start(
            [
                sys.executable,
                "-m",
                "registry.cli",
                "serve",
                "--db",
                f"sqlite:///{work / 'reg.sqlite3'}",
                "--blobs",
                str(work / "blobs"),
                "--port",
                "0",
                "--enable-bench-put",
                "--rate-limit",
                "0",
            ],
            work / "registry.log",
            cwd=args.registry_root,
        )
        procs.append(ours)
        key = Ed25519PrivateKey.generate()
        token = sign_in(base, key)
        cid = create_contribution(base, key, token, sha, size)
        meta = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}"
            for k, v in {"sha256": sha, "contribution": cid}.items()
        )
        ours_headers = {"Authorization": f"Bearer {token}", "Upload-Metadata": meta}
        node_url = None
        node_pid = ours.pid
        if "node-tus" in only:
            if not (NODE_DIR / "node_modules" / "@tus" / "server").exists():
                subprocess.run(
                    ["npm", "install", "--no-audit", "--no-fund"],
                    cwd=NODE_DIR,
                    check=True,
                    capture_output=True,
                )
            (work / "node-files").mkdir()
            node, node_base = start(
                ["node", "server.js", str(work / "node-files")], work / "node.log", cwd=NODE_DIR
            )
            procs.append(node)
            node_pid = node.pid
            node_url = f"{node_base}/files"
        with blob.open("rb") as fh:  # warm the page cache once for everybody
            while fh.read(64 * 1024 * 1024):
                pass
        spy: subprocess.Popen[bytes] | None = None
        if args.py_spy is not None:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record", "--pid", str(ours.pid), "--format", "raw", "--threads",
                    "--rate", "200", "--output", str(args.py_spy.resolve()),
                ],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)

        def run_ours() -> float:
            t = tus_upload(f"{base}/v1/uploads/", blob, size, chunk, ours_headers)
            shutil.rmtree(work / "blobs" / sha[:2], ignore_errors=True)
            return t

        def run_node() -> float:
            assert node_url is not None
            t = tus_upload(node_url, blob, size, chunk, {})
            for f in (work / "node-files").iterdir():
                f.unlink()
            return t

        runs: dict[str, Callable[[], float]] = {
            "ours-tus": run_ours,
            "node-tus": run_node,
            "curl-put": lambda: curl_put(f"{base}/v1/bench/put", blob),
            "dd-direct": lambda: dd(work / "dd.bin", args.size_mib, "oflag=direct"),
            "dd-fsync": lambda: dd(work / "dd.bin", args.size_mib, "conv=fsync"),
        }
        mbps: dict[str, list[float]] = {t: [] for t in only}
        cpu: dict[str, list[float]] = {t: [] for t in only}
        client_cpu: dict[str, list[float]] = {t: [] for t in only}
        sha_mbps: list[float] = []
        loads: list[float] = []
        gib = size / 2**30
        for r in range(args.rounds):
            cells = []
            for target in only:
                subprocess.run(["sync"], check=True)
                before = os.getloadavg()[0]
                server = node_pid if target == "node-tus" else ours.pid
                cpu0, own0 = cpu_seconds(server), time.process_time()
                seconds = runs[target]()
                cpu[target].append((cpu_seconds(server) - cpu0) / gib)
                client_cpu[target].append((time.process_time() - own0) / gib)
                after = os.getloadavg()[0]
                loads += [before, after]
                mbps[target].append(size / seconds / 1e6)
                cells.append(f"{target} {mbps[target][-1]:4.0f} (load {before:.1f}/{after:.1f})")
            sha_mbps.append(size / sha256_seconds(seed, size) / 1e6)
            print(f"round {r + 1}: " + "  ".join(cells), flush=True)
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait(60)
        med = {t: statistics.median(v) for t, v in mbps.items()}
        print(
            f"\n{args.size_mib} MiB blob, {args.chunk_mib} MiB PATCHes, {args.rounds} alternating"
            f" rounds; load average (1 min) {min(loads):.2f}-{max(loads):.2f} during the runs"
        )
        print("  target      MB/s: min median    max   CPU s/GiB (median): server    client")
        for t, v in mbps.items():
            reg = f"{statistics.median(cpu[t]):5.2f}" if t in SERVED else "     "
            own = f"{statistics.median(client_cpu[t]):5.2f}" if "tus" in t else ""
            print(f"  {t:10s}       {spread(v)}                       {reg}   {own}")
        print(
            f"  sha256 of the blob in memory, one thread (the whole-blob hash's ceiling): "
            f"{spread(sha_mbps)} MB/s"
        )
        if "ours-tus" in med:
            per_gib = statistics.median(cpu["ours-tus"]) + statistics.median(client_cpu["ours-tus"])
            ceiling = (os.cpu_count() or 1) / per_gib * 2**30 / 1e6
            print(
                f"  CPU ceiling of ours on {os.cpu_count()} cores (registry + client "
                f"{per_gib:.2f} CPU s per GiB, nothing else running): {ceiling:.0f} MB/s"
            )
        if "ours-tus" in med:
            for other, label in (
                ("dd-direct", "limit (dd oflag=direct)"),
                ("node-tus", "node-tus"),
                ("curl-put", "curl-put"),
                ("dd-fsync", "dd conv=fsync"),
            ):
                if other in med:
                    ratio = med["ours-tus"] / med[other]
                    print(f"  ours-tus / {label} = {ratio:.2f}x")
    except BaseException:
        log = work / "registry.log"
        if log.exists():
            print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
