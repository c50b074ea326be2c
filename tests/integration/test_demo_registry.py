"""The embedded demo registry of `--demo`: starts on loopback, answers, never outlives the app."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

from app.services.demo import start_demo_registry

ROOT = Path(__file__).resolve().parents[2]


def test_demo_registry_starts_answers_and_stops(tmp_path: Path) -> None:
    demo = start_demo_registry(tmp_path)
    try:
        assert demo.url.startswith("http://127.0.0.1:")
        health = requests.get(f"{demo.url}/v1/health", timeout=10).json()
        assert health["status"] == "ok"
    finally:
        demo.stop()
    assert demo.process.poll() is not None


def test_demo_registry_keeps_its_identity_and_data_across_restarts(tmp_path: Path) -> None:
    """A new port at every start, but the same registry: same id, same database."""
    seen = []
    for _ in range(2):
        demo = start_demo_registry(tmp_path)
        try:
            health = requests.get(f"{demo.url}/v1/health", timeout=10).json()
            with sqlite3.connect(demo.db_url.removeprefix("sqlite:///")) as db:
                models = db.execute("SELECT count(*) FROM models").fetchone()[0]
            seen.append((demo.url, health["registryId"], models))
            demo.seed()  # the demo operator and models, stored in the data folder
        finally:
            demo.stop()
    (url1, id1, models1), (url2, id2, models2) = seen
    assert id1 == id2 and id1.startswith("reg_")
    assert models1 == 0 and models2 == 3  # the first start's seeding is still there
    other = start_demo_registry(tmp_path / "elsewhere")
    try:  # another data folder: another registry
        assert requests.get(f"{other.url}/v1/health", timeout=10).json()["registryId"] != id1
    finally:
        other.stop()


def test_demo_registry_dies_with_a_killed_app(tmp_path: Path) -> None:
    """kill -9 of the app must not leave the demo server running (Linux: PDEATHSIG)."""
    code = (
        "import sys, time; from pathlib import Path; "
        "from app.services.demo import start_demo_registry; "
        f"d = start_demo_registry(Path({str(tmp_path)!r})); "
        "print(d.process.pid, flush=True); time.sleep(120)"
    )
    app = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert app.stdout is not None
    child = int(app.stdout.readline())
    os.kill(app.pid, signal.SIGKILL)
    app.wait()
    app.stdout.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:
            if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
                return  # exited; waiting to be reaped by init
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the demo registry outlived the app")


def test_demo_usage_carries_evidence_from_the_contributions_own_files(tmp_path: Path) -> None:
    """`make run`'s demo: a contribution submitted to the embedded registry, then the demo
    seeded (as the app does): exact-match spans and retrieval chunks name the contribution's
    real bytes, so every span hashes right against the contributor's own copy; influence
    carries none."""
    import hashlib
    import json
    from datetime import UTC, datetime, timedelta

    import httpx

    from tests.support.registry_actors import Contributor, contribution_body

    files = {
        "notes/poem.txt": "".join(
            f"Line {i}: the river runs below the hill, été {i}\n" for i in range(300)
        ).encode(),
        "data/labels.csv": b"text,label\n" + b"".join(b"row %d,x\n" % i for i in range(200)),
        "raw.bin": bytes((i * 31) % 251 for i in range(3000)),
    }
    by_sha = {hashlib.sha256(d).hexdigest(): d for d in files.values()}
    demo = start_demo_registry(tmp_path)
    try:
        with httpx.Client(base_url=demo.url, timeout=30) as http:
            who = Contributor()
            who.sign_in(http)
            body = contribution_body(who.key, files, registry=demo.url)
            r = http.post("/v1/contributions", json=body, headers=who.headers)
            assert r.status_code == 201, r.text
            cid = r.json()["id"]
            index = json.dumps(
                {"blobs": [{"sha256": s, "size": len(d)} for s, d in by_sha.items()]}
            ).encode()
            r = http.post(
                "/v1/uploads/batch",
                params={"contribution": cid},
                content=len(index).to_bytes(4, "big") + index + b"".join(by_sha.values()),
                headers={**who.headers, "Content-Type": "application/octet-stream"},
            )
            assert r.status_code == 200, r.text
            r = http.post(f"/v1/contributions/{cid}/finalize", headers=who.headers)
            assert r.json()["state"] == "accepted", r.text
            # Accepted a month ago, so the demo has a month of usage to simulate.
            with sqlite3.connect(demo.db_url.removeprefix("sqlite:///")) as db:
                month_ago = datetime.now(UTC) - timedelta(days=30)
                db.execute(
                    "UPDATE contributions SET updated_at = ? WHERE id = ?",
                    (month_ago.strftime("%Y-%m-%d %H:%M:%S.%f"), cid),
                )
            demo.seed(who.public_key)
            entries = http.get(
                "/v1/me/rewards", params={"limit": 1000}, headers=who.headers
            ).json()["items"]
            checked = {"exact-match": 0, "retrieval": 0, "influence": 0}
            for entry in entries:
                url = f"/v1/me/rewards/{entry['cursor']}/events"
                items = http.get(url, params={"limit": 1000}, headers=who.headers).json()["items"]
                for item in items:
                    ev = item["evidence"]
                    if entry["method"] == "influence":
                        assert ev is None
                        checked["influence"] += 1
                        continue
                    assert ev is not None, item
                    if ev["offset"] is not None:
                        data = by_sha[ev["fileSha256"]]
                        span = data[ev["offset"] : ev["offset"] + ev["length"]]
                        assert hashlib.sha256(span).hexdigest() == ev["spanSha256"]
                    else:
                        assert entry["method"] == "retrieval" and ev["fileSha256"] in by_sha
                    checked[entry["method"]] += 1
            assert all(n > 0 for n in checked.values()), checked
    finally:
        demo.stop()
