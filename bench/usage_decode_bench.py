"""CPU per event of `POST /v1/usage`, body decoded by msgspec (`decode_usage`) vs by the
pydantic models (the route's path when `decode_usage` answers None): in-process registry
(TestClient, SQLite, settler off), batches of 1,000 events x 3 attributions, without and with
evidence (on 2 of 3 attributions), alternating rounds in one process. CPU is this process's
(registry + TestClient client side), per event.

    .venv/bin/python bench/usage_decode_bench.py            # ROUNDS=6 BATCHES=4 by default
    GC_OFF=1 .venv/bin/python bench/usage_decode_bench.py   # the same with the GC disabled
"""

import hashlib
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.usage_data import add_files, usage_world  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "6"))
BATCHES = int(os.environ.get("BATCHES", "4"))
METHODS = ("influence", "exact-match", "retrieval")


def main():
    import gc

    if os.environ.get("GC_OFF"):
        gc.disable()
    tmp = Path(tempfile.mkdtemp())
    with usage_world(
        f"sqlite:///{tmp}/r.db", tmp, contributors=10, per_contributor=10, settle_in_process=False
    ) as w:
        cids = [c for ids in w.contributions.values() for c in ids]
        files = {}
        with w.sessions() as s:
            for c in cids:
                data = (c * 100).encode()
                sha = add_files(s, c, {"a.txt": data})["a.txt"]
                files[c] = (sha, data)
        rng = random.Random(5)
        now = datetime.now(UTC)

        def body(tag, evidence):
            evs = []
            for i in range(1000):
                picks = rng.sample(cids, 3)
                atts = []
                for j, c in enumerate(picks):
                    a = {
                        "contributionId": c,
                        "weight": rng.randrange(1, 1000) / 1000,
                        "method": METHODS[j],
                    }
                    if evidence and j > 0:
                        sha, data = files[c]
                        a["evidence"] = {
                            "fileSha256": sha,
                            "offset": 10,
                            "length": 20,
                            "spanSha256": hashlib.sha256(data[10:30]).hexdigest(),
                        }
                    atts.append(a)
                evs.append(
                    {
                        "eventId": f"{tag}-{i}",
                        "modelId": "test-model",
                        "at": (now - timedelta(seconds=rng.randrange(90 * 86400))).isoformat(),
                        "feeMicro": rng.randrange(100, 10000),
                        "attributions": atts,
                    }
                )
            return json.dumps({"events": evs}, separators=(",", ":")).encode()

        h = dict(w.operator.headers, **{"content-type": "application/json"})

        def post(b):
            r = w.client.post("/v1/usage", content=b, headers=h)
            assert r.status_code == 200 and not r.json()["rejected"], r.text[:500]

        post(body("warm0", False))
        post(body("warm1", True))
        import registry.routes.usage as U

        real = U.decode_usage
        modes = {"pydantic": lambda raw: None, "msgspec": real}
        res = {(m, ev): [] for m in modes for ev in (False, True)}
        n = 0
        print("loadavg before", os.getloadavg())
        for r in range(ROUNDS):
            order = [(m, ev) for m in modes for ev in (False, True)]
            if r % 2:
                order.reverse()
            for m, ev in order:
                U.decode_usage = modes[m]
                bodies = [body(f"r{r}-{ev}-{k}-{n}", ev) for k in range(BATCHES)]
                n += 1
                c0 = time.process_time()
                for b in bodies:
                    post(b)
                res[(m, ev)].append((time.process_time() - c0) / (BATCHES * 1000) * 1e6)
        print("loadavg after", os.getloadavg())
        for (m, ev), xs0 in res.items():
            xs = sorted(xs0)
            mmm = f"min {xs[0]:.1f} median {xs[len(xs) // 2]:.1f} max {xs[-1]:.1f}"
            print(f"{m:8} evidence={ev!s:5}: CPU us/event {mmm}  all {[round(x, 1) for x in xs0]}")


main()
