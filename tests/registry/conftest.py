"""Registry fixtures: in-process app (TestClient), live server subprocess, real PostgreSQL.

The core suite runs against SQLite and PostgreSQL through the parametrized `db_url` fixture;
PostgreSQL is a throwaway cluster started once per session (initdb + pg_ctl on a random port).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry.app import create_app
from registry.db.session import make_engine, migrate
from registry.settings import RegistrySettings
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
TEST_REGISTRY = "http://testserver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str) -> list[str]:
    """Commands run as the postgres user when we are root (initdb refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return list(args)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL cluster (superuser postgres, trust auth, loopback)."""
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{initdb} is required in CI (.ci/run must install postgresql)")
        pytest.skip("PostgreSQL server binaries not installed")
    root = Path(tempfile.mkdtemp(prefix="registry-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(str(initdb), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8"),
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ),
        check=True,
        capture_output=True,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        _make_template(url)
        yield url
    finally:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


TEMPLATE_DB = "registry_template"


def _make_template(pg_url: str) -> None:
    """Migrate once into a template database; each test copies it (much faster than
    running every migration per test)."""
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    engine = make_engine(pg_url.rsplit("/", 1)[0] + f"/{TEMPLATE_DB}")
    migrate(engine)
    engine.dispose()


def fresh_pg_database(pg_url: str) -> str:
    """A new database (migrated, from the template) in the session cluster; its URL."""
    name = "t_" + secrets.token_hex(6)
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}" STRATEGY FILE_COPY')
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    return fresh_pg_database(request.getfixturevalue("pg_url"))


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., FastAPI]]:
    """Build registry apps on tmp paths; engines are disposed after the test."""
    apps: list[FastAPI] = []

    def _make(db_url: str, **overrides: object) -> FastAPI:
        blobs = overrides.pop("blobs_dir", tmp_path / "blobs")
        settings = RegistrySettings(
            db_url=db_url,
            blobs_dir=Path(str(blobs)),
            access_log=False,
            **overrides,  # type: ignore[arg-type]
        )
        app = create_app(settings)
        apps.append(app)
        return app

    yield _make
    for app in apps:
        if getattr(app.state, "settler", None) is not None:
            app.state.settler.stop()
        app.state.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., FastAPI], db_url: str) -> FastAPI:
    return make_app(db_url)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=TEST_REGISTRY) as c:
        yield c


@pytest.fixture
def alice(client: TestClient) -> Contributor:
    who = Contributor()
    who.sign_in(client)
    return who


@pytest.fixture
def bob(client: TestClient) -> Contributor:
    who = Contributor()
    who.sign_in(client)
    return who


@pytest.fixture(scope="module")
def live_registry_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """The real server (`contributor-registry serve --port 0`) on a temp SQLite database,
    shared by the tests of one module (each test signs in with its own fresh key)."""
    tmp = tmp_path_factory.mktemp("live-registry")
    server = RegistryProcess(f"sqlite:///{tmp / 'live.sqlite3'}", tmp / "blobs")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def live_registry(live_registry_process: RegistryProcess) -> str:
    """Base URL (http://127.0.0.1:PORT) of a live registry subprocess."""
    return live_registry_process.base_url
