"""The registry's side of a contributor's first sync: the reads it makes, timed on the server.

Starts `contributor-registry serve` on the database built by bench/usage_sync_bench.py
(bench/out/sync-<events>-<contributions>-<models>-<days>, build it with that bench first) and
makes, over one HTTP client, the reads of a first sync: every ledger page (GET /v1/me/rewards),
the usage window of every contribution (GET /v1/contributions/{id}/usage), every hash tile of
the log (GET /v1/log/tile/...) and the leaves of every entry (POST /v1/log/leaves, 10,000 ids
a request). Prints, per kind of request and round: requests, wall, the registry process's CPU
(user + system from /proc) in total and per request, and the load average; then min / median /
max over `--rounds`.

Run: .venv/bin/python bench/registry_reads_bench.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out"
TILE_WIDTH = 256
LEAF_BATCH = 10_000
BASELINE = "fetch-only baseline (app client)"


def _load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tile_paths(size: int) -> list[str]:
    """Every hash tile of a tree of `size` leaves (full ones and the partial right edge)."""
    from app.tlog.tiles import tile_path

    out: list[str] = []
    level, n = 0, size
    while n > 0:
        full, part = divmod(n, TILE_WIDTH)
        out += [tile_path(level, i) for i in range(full)]
        if part:
            out.append(tile_path(level, full, part))
        n = full
        level += 1
    return out


PHASES = ("rewards", "usage", "tiles", "leaves")


def _warm(client: Any, cids: list[str]) -> None:
    """One read of each kind first: FastAPI builds each router's routes at its first
    request (tens of ms), which is no part of a sync against a running registry."""
    http = client.http
    http.json("GET", "/v1/me/rewards", params={"limit": 1})
    http.json("GET", f"/v1/contributions/{cids[0]}/usage", params={"bucket": "day"})
    http.request("GET", "/v1/log/checkpoint", auth=False)
    http.json("POST", "/v1/log/leaves", auth=False, json={"entryIds": []})


def _round(
    client: Any, pid: int, cids: list[str], only: set[str]
) -> dict[str, tuple[int, float, float]]:
    """{kind: (requests, wall s, server CPU s)} of one round of the sync's reads (`only`
    these phases; the leaves need the ledger's ids, so they read the pages too)."""
    http = client.http
    out: dict[str, tuple[int, float, float]] = {}

    def phase(name: str, kind: str, calls: list[Any]) -> None:
        if name not in only:
            return
        t, c = time.perf_counter(), _server_cpu(pid)
        for f in calls:
            f()
        out[kind] = (len(calls), time.perf_counter() - t, _server_cpu(pid) - c)

    ids: list[str] = []
    if "rewards" in only or "leaves" in only:
        # Ledger pages run one after another (each cursor comes from the page before).
        t, c = time.perf_counter(), _server_cpu(pid)
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 10_000}
            if cursor is not None:
                params["after"] = cursor
            body = http.json("GET", "/v1/me/rewards", params=params)
            pages += 1
            ids += [str(i["cursor"]) for i in body["items"]]
            nxt = body.get("nextCursor")
            if not body.get("hasMore") or nxt in (None, cursor):
                break
            cursor = str(nxt)
        out["GET /v1/me/rewards (10,000 a page)"] = (
            pages, time.perf_counter() - t, _server_cpu(pid) - c
        )  # fmt: skip
    since = (datetime.now(UTC).date() - timedelta(days=89)).isoformat()
    phase(
        "usage",
        "GET /v1/contributions/{id}/usage",
        [
            (lambda cid=cid: http.json(
                "GET", f"/v1/contributions/{cid}/usage", params={"bucket": "day", "since": since}
            ))
            for cid in cids
        ],
    )  # fmt: skip
    note = http.request("GET", "/v1/log/checkpoint", auth=False).text
    size = int(note.splitlines()[1])
    phase(
        "tiles",
        "GET /v1/log/tile/... (hash tiles)",
        [
            (lambda p=p: http.request("GET", "/v1/log/" + p, auth=False).content)
            for p in _tile_paths(size)
        ],
    )
    phase(
        "leaves",
        "POST /v1/log/leaves (10,000 ids)",
        [
            (lambda chunk=ids[i : i + LEAF_BATCH]: http.json(
                "POST", "/v1/log/leaves", auth=False, json={"entryIds": chunk, "treeSize": size}
            ))
            for i in range(0, len(ids), LEAF_BATCH)
        ],
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--place", type=Path, default=OUT / "sync-1000000-500-2-30")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="serve --workers N (0: the default)")
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="record the registry with py-spy (raw stacks)"
    )
    parser.add_argument("--only", default=",".join(PHASES), help="phases: " + ",".join(PHASES))
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time usage_sync_bench's fetch-only baseline (every ledger page and usage "
        "window through the app's client, nothing stored) each round",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    place: Path = args.place
    if not (place / "built").exists():
        print(f"{place} is not built: run bench/usage_sync_bench.py first", file=sys.stderr)
        return 2
    from bench.usage_sync_bench import _keyring

    _keyring(place / "keyring")
    from app.services.clients import make_client
    from app.services.context import ServiceContext
    from app.store.models import Item
    from tests.support.registry_server import RegistryProcess

    extra = ["--rate-limit", "1000000", "--no-settler"]
    if args.workers:
        extra += ["--workers", str(args.workers)]
    server = RegistryProcess(
        f"sqlite:///{place / 'registry.sqlite3'}", place / "blobs", extra_args=tuple(extra)
    )
    url = server.start()
    assert server.proc is not None
    pid = server.proc.pid
    print(f"registry reads bench: {place.name}, pid {pid}; {_load()}")
    work = Path(tempfile.mkdtemp(prefix="reads-bench-"))
    rounds: list[dict[str, tuple[int, float, float]]] = []
    try:
        shutil.copytree(place / "desk", work / "desk")
        ctx = ServiceContext(work / "desk", url)
        with ctx.db.session() as s:
            cids = [
                str(c) for (c,) in s.query(Item.registry_id).filter(Item.registry_id.is_not(None))
            ]
        client = make_client(ctx)
        spy = None
        if args.py_spy is not None:
            import subprocess

            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-f",
                 "raw", "-r", "200", "--gil", "-o", str(args.py_spy)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
        try:
            _warm(client, cids)
            for rnd in range(args.rounds):
                got = _round(client, pid, cids, only)
                if args.baseline:
                    from bench.usage_sync_bench import _fetch_only

                    t, c = time.perf_counter(), _server_cpu(pid)
                    entries = _fetch_only(url, ctx)
                    got[BASELINE] = (
                        1, time.perf_counter() - t, _server_cpu(pid) - c
                    )  # fmt: skip
                    print(f"  baseline: {entries:,} entries")
                rounds.append(got)
                total = sum(v[2] for k, v in got.items() if k != BASELINE)
                wall = sum(v[1] for k, v in got.items() if k != BASELINE)
                print(f"round {rnd + 1}: wall {wall:.3f} s, registry CPU {total:.2f} s; {_load()}")
                for kind, (n, w, cpu) in got.items():
                    print(
                        f"  {kind:<38} {n:5d} req  wall {w:7.3f} s  CPU {cpu:6.2f} s"
                        f"  {cpu / n * 1000:7.2f} ms/req"
                    )
        finally:
            client.close()
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
    finally:
        server.kill(15)
        shutil.rmtree(work, ignore_errors=True)
    print(f"over {len(rounds)} rounds (min / median / max); {_load()}")
    for kind in rounds[0]:
        n = rounds[0][kind][0]
        cpu = [r[kind][2] / n * 1000 for r in rounds]
        wall = [r[kind][1] for r in rounds]
        print(
            f"  {kind:<38} CPU ms/req {min(cpu):6.2f} {statistics.median(cpu):6.2f} "
            f"{max(cpu):6.2f}   wall s {min(wall):6.3f} {statistics.median(wall):6.3f} "
            f"{max(wall):6.3f}"
        )
    totals = [sum(v[2] for k, v in r.items() if k != BASELINE) for r in rounds]
    walls = [sum(v[1] for k, v in r.items() if k != BASELINE) for r in rounds]
    print(
        f"  {'all reads':<38} CPU s {min(totals):6.2f} {statistics.median(totals):6.2f} "
        f"{max(totals):6.2f}   wall s {min(walls):6.3f} {statistics.median(walls):6.3f} "
        f"{max(walls):6.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
