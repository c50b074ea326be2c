"""contributor-registry subcommands (in-process) and the public_url setting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry.cli import main
from registry.db.models import Key
from registry.db.session import make_engine, make_sessionmaker
from tests.support.registry_actors import Contributor, contribution_body


def test_add_operator_registers_role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    who = Contributor()
    assert main(["add-operator", who.public_key, "--db", db]) == 0
    assert who.fingerprint in capsys.readouterr().out
    engine = make_engine(db)
    with make_sessionmaker(engine)() as s:
        key = s.get(Key, who.fingerprint)
        assert key is not None and key.role == "operator"
    engine.dispose()


def test_add_operator_rejects_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["add-operator", "xyz", "--db", f"sqlite:///{tmp_path / 'r.sqlite3'}"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_openapi_subcommand_writes_sorted_json(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert main(["openapi", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith('{\n  "components"')
    assert '"/v1/uploads/"' in text


def test_public_url_is_what_must_be_signed(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'p.sqlite3'}", public_url="https://reg.example/")
    with TestClient(app, base_url="http://internal:8000") as c:
        who = Contributor()
        who.sign_in(c)
        wrong = contribution_body(who.key, {"a": b"a"}, registry="http://internal:8000")
        assert c.post("/v1/contributions", json=wrong, headers=who.headers).status_code == 422
        right = contribution_body(who.key, {"a": b"a"}, registry="https://reg.example")
        assert c.post("/v1/contributions", json=right, headers=who.headers).status_code == 201
