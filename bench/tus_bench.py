"""Upload throughput of one large blob over loopback: our tus endpoint vs the Node tus server
(@tus/server + @tus/file-store) vs `curl -T` into a plain PUT handler on our server.

The same client (a minimal tus client on http.client: POST, then PATCHes of --chunk-mib with
Content-Length, streamed from the file with readinto) uploads to both tus servers; runs
alternate (ours, node, curl, ours, ...) so background load hits all alike. Ours does more work
per byte than the baselines: whole-blob sha256, bearer-token auth (DB) per request, a durable
offset in the DB, and the bytes are on disk (fsync) before the last PATCH is answered and the
blob is published atomically. The Node file store never fsyncs (and the bench deletes its
files, so its bytes may never reach the disk); the PUT handler writes through the page cache
and fsyncs once at the end.

    .venv/bin/python bench/tus_bench.py [--size-mib 1024] [--rounds 3] [--chunk-mib 32]

Figures (2026-11-26, 2 vCPU shared with other jobs, load average 3-6; 1 GiB, 32 MiB PATCHes,
median of 3; compare ratios, single runs swing +-30%):

    before: ours-tus 109 MB/s   node-tus 220 MB/s   curl-put 126 MB/s
            ours-tus / node-tus = 0.49x   ours-tus / curl-put = 0.86x
    after:  ours-tus 212 MB/s   node-tus 215 MB/s   curl-put 154 MB/s
            ours-tus / node-tus = 0.99x   ours-tus / curl-put = 1.38x
    again:  ours-tus 179 MB/s   node-tus 178 MB/s   curl-put 141 MB/s
            ours-tus / node-tus = 1.01x   ours-tus / curl-put = 1.27x

What changed (registry/tus.py, registry/routes/uploads.py): no fsync per PATCH (the answer
reports the live offset; a background flush per PATCH, any HEAD and completion make it
durable), O_DIRECT writes of whole blocks through an aligned staging buffer (on this VM,
writing 512 MiB into the page cache took 1.76 s of CPU, with O_DIRECT 0.15 s), write and hash
of 1 MiB slices in pooled threads up to 4 slices behind the network, no thread hops for the
per-PATCH open/close. Larger PATCHes amortise the per-request auth/DB cost: with 128 MiB PATCHes
(512 MiB blob) ours reached 1.20x of Node.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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


def start(cmd: list[str], log: Path, cwd: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, cwd=cwd)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"{cmd[0]} did not start: {line!r}; see {log}")
    return proc, line.split("listening on ", 1)[1].strip()


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk-mib", type=int, default=32)
    ap.add_argument("--skip-node", action="store_true")
    args = ap.parse_args()
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
            cwd=ROOT,
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
        if not args.skip_node:
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
            node_url = f"{node_base}/files"
        with blob.open("rb") as fh:  # warm the page cache once for everybody
            while fh.read(64 * 1024 * 1024):
                pass
        times: dict[str, list[float]] = {"ours-tus": [], "node-tus": [], "curl-put": []}
        for r in range(args.rounds):
            times["ours-tus"].append(
                tus_upload(f"{base}/v1/uploads/", blob, size, chunk, ours_headers)
            )
            shutil.rmtree(work / "blobs" / sha[:2], ignore_errors=True)
            if node_url:
                times["node-tus"].append(tus_upload(node_url, blob, size, chunk, {}))
                for f in (work / "node-files").iterdir():
                    f.unlink()
            times["curl-put"].append(curl_put(f"{base}/v1/bench/put", blob))
            print(
                f"round {r + 1}: "
                + "  ".join(f"{k} {size / v[-1] / 1e6:7.0f} MB/s" for k, v in times.items() if v),
                flush=True,
            )
        mbps = {k: size / statistics.median(v) / 1e6 for k, v in times.items() if v}
        print(f"\n{args.size_mib} MiB blob, {args.chunk_mib} MiB PATCHes, median of {args.rounds}:")
        for k, v in mbps.items():
            print(f"  {k:9s} {v:7.0f} MB/s")
        if "node-tus" in mbps:
            print(f"  ours-tus / node-tus = {mbps['ours-tus'] / mbps['node-tus']:.2f}x")
        print(f"  ours-tus / curl-put = {mbps['ours-tus'] / mbps['curl-put']:.2f}x")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
