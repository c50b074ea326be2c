"""`contributor-registry serve --workers N`: N uvicorn worker processes on one listening socket
(PostgreSQL only), and the serve process itself as their supervisor.

What runs where:
- The serve process migrates the database, registers the operator keys, releases upload claims
  left by a previous run and makes the transparency log key, once, before any worker starts
  (N processes doing it at once would race). Then it binds the socket, starts the workers
  (uvicorn's supervisor: a worker that dies is replaced) and runs the ONE settler of this
  registry in a thread of its own (`--no-settler`: none; run `contributor-registry settle`
  beside it). Workers wake it across processes: every intake transaction notifies
  `registry.ledger.USAGE_CHANNEL` (delivered at commit) and the settler LISTENs; it also polls
  every `SETTLER_POLL_S` as a backstop. Settlers of one database serialise on the watermark
  row anyway, so an extra `settle` process is harmless.
- Each worker builds the app with `worker_process=True` (none of the above, no settler) from
  the settings the serve process put in its environment, and serves requests.

What the workers share, and how:
- Rate limits: in the database (`rate_limit_buckets`, registry.ratelimit.SharedTokenBuckets),
  one atomic upsert per request, so a key's budget holds in total, not once per worker.
- The intake lookup cache (registry.ledger.LookupCache) holds only facts that cannot change
  and reads every miss from the database, so a model registered or a contribution accepted
  through one worker is seen by the next batch of every other; the one change that
  invalidates it (`forget_contribution`) bumps a generation row every worker checks per batch.
- Sequence numbers of the usage log: PostgreSQL's transaction advisory lock (registry.ledger).
- Not shared: the per-process tus upload table (registry/routes/uploads.py): one upload's
  PATCHes are sequential from a client anyway; two clients patching the same upload id at
  once through different workers are not serialised against each other.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import socket
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from registry.settings import RegistrySettings

SETTINGS_ENV = "CONTRIBUTOR_REGISTRY_WORKER_SETTINGS"
SETTLER_POLL_S = 0.2


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so port 0 works and the real port is known before
    serving; connections queue from the moment the port is announced."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def http_protocol() -> Any:
    """uvicorn's httptools protocol offering raw bodies (registry/rawbody.py) when httptools is
    installed, else uvicorn's choice (bodies through receive())."""
    try:
        from registry.rawbody_http import RawBodyHttpToolsProtocol
    except ImportError:
        return "auto"
    return RawBodyHttpToolsProtocol


def uvicorn_options() -> dict[str, Any]:
    return {
        "http": http_protocol(),
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": 30,
        "h11_max_incomplete_event_size": 64 * 1024,
    }


def settings_to_env(settings: RegistrySettings) -> str:
    fields = dataclasses.asdict(settings)
    fields["blobs_dir"] = str(settings.blobs_dir)
    fields["operator_keys"] = list(settings.operator_keys)
    return json.dumps(fields)


def settings_from_env(text: str) -> RegistrySettings:
    fields: dict[str, Any] = json.loads(text)
    fields["blobs_dir"] = Path(fields["blobs_dir"])
    fields["operator_keys"] = tuple(fields["operator_keys"])
    fields["worker_process"] = True
    return RegistrySettings(**fields)


def worker_app() -> FastAPI:
    """uvicorn's app factory in each worker process."""
    from registry.app import create_app
    from registry.cli import configure_logging

    configure_logging()
    app = create_app(settings_from_env(os.environ[SETTINGS_ENV]))
    gc.freeze()  # as in the single-process serve: long-lived objects out of the collector's way
    return app


def _prepare(settings: RegistrySettings) -> None:
    """Everything a registry does once at start (migrations, operator keys, stale upload
    claims, the log key): building the app once, in this process, does exactly that."""
    from registry.app import create_app

    app = create_app(dataclasses.replace(settings, settle_in_process=False))
    app.state.engine.dispose()


def serve(settings: RegistrySettings, host: str, port: int, workers: int) -> int:
    """Run `workers` API processes and the settler (unless settings.settle_in_process is off)
    until SIGINT/SIGTERM; 0 when stopped."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from registry.db.session import make_engine, make_sessionmaker
    from registry.settlement import Settler

    _prepare(settings)
    sock = listen(host, port)
    os.environ[SETTINGS_ENV] = settings_to_env(settings)  # inherited by the spawned workers
    config = uvicorn.Config(
        "registry.workers:worker_app", factory=True, workers=workers, **uvicorn_options()
    )
    engine = make_engine(settings.db_url)
    settler = None
    if settings.settle_in_process:
        settler = Settler(
            make_sessionmaker(engine), settings.contributor_share_ppm, poll_s=SETTLER_POLL_S
        )
        settler.start()
    print(f"listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        if settler is not None:
            settler.stop()
        engine.dispose()
        sock.close()
    return 0
