"""Build the FastAPI application for one registry instance (no globals: all on app.state)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from sqlalchemy import update

from app import __version__
from app.signing.identity import public_key_problem
from registry import translog
from registry.auth import fingerprint_of
from registry.blobstore import FileBlobStore
from registry.db.models import ROLE_OPERATOR, Key, Upload
from registry.db.session import make_engine, make_sessionmaker, migrate
from registry.errors import install_error_handlers
from registry.middleware import AccessLogMiddleware, BodyLimitMiddleware, TextGuardMiddleware
from registry.routes import auth as auth_routes
from registry.routes import bench as bench_routes
from registry.routes import blob_batch as blob_batch_routes
from registry.routes import contributions as contribution_routes
from registry.routes import datanets as datanet_routes
from registry.routes import health as health_routes
from registry.routes import keys as key_routes
from registry.routes import log as log_routes
from registry.routes import reads as read_routes
from registry.routes import uploads as upload_routes
from registry.routes import usage as usage_routes
from registry.settings import RegistrySettings
from registry.settlement import Settler


class UploadRuntime:
    """Per-process upload helpers: running sha256 states keyed by (upload id, offset) so a
    finished upload need not be re-read, and per-upload locks. Both are optimisations or
    in-process guards only; correctness rests on the DB claim + offset check."""

    def __init__(self) -> None:
        self.hashes: dict[tuple[str, int], Any] = {}
        self.lock = threading.Lock()


def _register_operators(app: FastAPI, settings: RegistrySettings) -> None:
    with app.state.sessions() as session:
        for pub in settings.operator_keys:
            fpr = fingerprint_of(pub)
            key = session.get(Key, fpr)
            if key is None:
                session.add(Key(fingerprint=fpr, public_key=pub.lower(), role=ROLE_OPERATOR))
            else:
                key.role = ROLE_OPERATOR
        session.commit()


def _release_stale_claims(app: FastAPI) -> None:
    """A PATCH claim cannot outlive the process that made it (kill -9 mid-upload)."""
    with app.state.sessions() as session:
        session.execute(update(Upload).where(Upload.claim.is_not(None)).values(claim=None))
        session.commit()


def _run_settler(app: FastAPI, settler: Settler) -> None:
    """The settler thread runs while the app is served: started at startup (it then settles
    what an earlier run left unsettled) and by the first usage batch, stopped at shutdown."""
    app.state.settler = settler
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        settler.start()
        try:
            async with inner(a) as state:
                yield state
        finally:
            settler.stop()

    app.router.lifespan_context = lifespan


def create_app(settings: RegistrySettings) -> FastAPI:
    """The whole registry: routes, error shape, middleware, DB and blob store on app.state."""
    for pub in settings.operator_keys:
        reason = public_key_problem(bytes.fromhex(pub))
        if reason is not None:
            raise ValueError(f"operator key {pub[:16]}… is refused: {reason}")
    app = FastAPI(
        title="Contributor Desk registry",
        version=__version__,
        description=(
            "Reference registry for Contributor Desk: signed contributions, tus uploads, "
            "model usage and rewards. See docs/protocol.md."
        ),
    )
    engine = make_engine(settings.db_url)
    if settings.migrate_on_start and not settings.worker_process:
        migrate(engine)
    settings.blobs_dir.mkdir(parents=True, exist_ok=True)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.blobs = FileBlobStore(settings.blobs_dir)
    app.state.uploads_dir = settings.blobs_dir / ".uploads"
    app.state.uploads_dir.mkdir(parents=True, exist_ok=True)
    app.state.upload_runtime = UploadRuntime()
    if not settings.worker_process:  # `serve --workers N` did these once, before the workers
        _register_operators(app, settings)
        _release_stale_claims(app)
    app.state.settler = None
    if settings.settle_in_process and not settings.worker_process:
        _run_settler(app, Settler(app.state.sessions, settings.contributor_share_ppm))

    install_error_handlers(app)
    for module in (
        health_routes,
        auth_routes,
        key_routes,
        datanet_routes,
        contribution_routes,
        upload_routes,
        blob_batch_routes,
        usage_routes,
        read_routes,
        log_routes,
    ):
        app.include_router(module.router)
    if not settings.worker_process:
        with app.state.sessions() as session:
            translog.identity(session)  # the log key is made at the first start
    if settings.enable_bench_put:
        app.include_router(bench_routes.router)
    if importlib.util.find_spec("registry.ratelimit") is not None:
        # registry-usage's module: install(app, settings) adds per-key 429 limits.
        ratelimit = importlib.import_module("registry.ratelimit")
        ratelimit.install(app, settings)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(TextGuardMiddleware, loopback_hosts_only=settings.loopback_hosts_only)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    return app
