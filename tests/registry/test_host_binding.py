"""The URL contributors sign never comes from a Host header the caller chose.

`serve` needs --public-url unless it listens on loopback; a loopback server without one
answers only requests whose Host names a loopback address. tus Locations use the public URL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry.cli import main
from registry.middleware import is_loopback
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata
from tests.support.registry_server import RegistryProcess
from tests.support.weak_ed25519 import IDENTITY


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`serve` as a process: one that starts serving instead of refusing fails the test (by
    its timeout) rather than hanging it."""
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    cmd = [sys.executable, "-m", "registry.cli", "serve", "--db", db]
    cmd += ["--blobs", str(tmp_path / "b"), "--port", "0", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve {' '.join(args)} started serving instead of refusing")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "registry.example"])
def test_serve_off_loopback_needs_a_public_url(tmp_path: Path, host: str) -> None:
    done = _serve(tmp_path, "--host", host)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: --public-url is required"), done.stderr
    assert not (tmp_path / "r.sqlite3").exists()  # refused before anything was created


@pytest.mark.parametrize("url", ["ftp://reg.example", "reg.example", "https://"])
def test_serve_refuses_a_public_url_that_is_not_http(tmp_path: Path, url: str) -> None:
    done = _serve(tmp_path, "--host", "0.0.0.0", "--public-url", url)
    assert done.returncode == 2, done.stderr
    assert "is not an http(s) URL" in done.stderr


def test_serve_and_add_operator_refuse_a_weak_operator_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = _serve(tmp_path, "--operator-key", IDENTITY.hex())
    assert done.returncode == 2, done.stderr
    assert "small-order" in done.stderr
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    assert main(["add-operator", IDENTITY.hex(), "--db", db]) == 2
    assert "small-order" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("localhost.evil.example", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real `serve` on 127.0.0.1 without --public-url."""
    tmp = tmp_path_factory.mktemp("host")
    server = RegistryProcess(f"sqlite:///{tmp / 'h.sqlite3'}", tmp / "blobs")
    server.start()
    try:
        yield server.base_url
    finally:
        server.kill()


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "10.0.0.1:8750", "[2001:db8::1]:1", "a\\b"]
)
def test_loopback_server_refuses_a_foreign_host_header(loopback_server: str, host: str) -> None:
    r = httpx.get(f"{loopback_server}/v1/health", headers={"Host": host})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_host"


def test_loopback_server_answers_loopback_names(loopback_server: str) -> None:
    port = loopback_server.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        r = httpx.get(f"{loopback_server}/v1/health", headers={"Host": host})
        assert r.status_code == 200, host


def test_signing_a_spoofed_host_does_not_bind(loopback_server: str) -> None:
    """Before: the contribution signed for http://evil.example was accepted when the request
    said Host: evil.example."""
    who = Contributor()
    with httpx.Client(base_url=loopback_server) as http:
        who.sign_in(http)
        body = contribution_body(who.key, {"a": b"a"}, registry="http://evil.example")
        r = http.post(
            "/v1/contributions", json=body, headers={**who.headers, "Host": "evil.example"}
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "bad_host"
        right = contribution_body(who.key, {"a": b"a"}, registry=loopback_server)
        assert http.post("/v1/contributions", json=right, headers=who.headers).status_code == 201


def test_tus_location_uses_the_public_url(make_app: Callable[..., FastAPI], tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'p.sqlite3'}", public_url="https://reg.example/")
    with TestClient(app, base_url="http://internal:8000") as c:
        who = Contributor()
        who.sign_in(c)
        body = contribution_body(who.key, {"a": b"abc"}, registry="https://reg.example")
        created = c.post("/v1/contributions", json=body, headers=who.headers)
        assert created.status_code == 201, created.text
        sha = created.json()["missingBlobs"][0]
        r = c.post(
            "/v1/uploads/",
            headers={
                **who.headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "3",
                "Upload-Metadata": tus_metadata(sha, created.json()["id"]),
                "Host": "evil.example",
            },
        )
        assert r.status_code == 201, r.text
        assert r.headers["location"].startswith("https://reg.example/v1/uploads/")
