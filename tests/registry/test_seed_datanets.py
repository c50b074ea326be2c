"""seed-demo's datanets: different rules, one with review owned by the demo user's key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.signing.identity import fingerprint, public_hex
from registry.cli import main as registry_main
from registry.seed_datanets import REVIEWED


def _datanets(db: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    capsys.readouterr()
    assert registry_main(["datanet", "list", "--json", *db]) == 0
    return {d["id"]: d for d in json.loads(capsys.readouterr().out)}


def test_seed_demo_makes_datanets_and_gives_the_reviewed_one_to_the_demo_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'r.sqlite3'}"]
    assert registry_main(["seed-demo", *db]) == 0
    nets = _datanets(db, capsys)
    assert {"demo-street-signs", "demo-labelled-text", REVIEWED} <= nets.keys()
    text_rules = nets["demo-labelled-text"]["rules"]
    assert isinstance(text_rules, dict)
    assert text_rules["requiredColumns"] == ["text", "label"] and text_rules["noDuplicates"]
    reviewed = nets[REVIEWED]
    assert isinstance(reviewed["rules"], dict) and reviewed["rules"]["review"] is True
    operator = reviewed["owner"]

    user = Ed25519PrivateKey.generate()
    assert registry_main(["seed-demo", *db, "--owner-key", public_hex(user)]) == 0
    nets = _datanets(db, capsys)
    assert nets[REVIEWED]["owner"] == fingerprint(user) != operator
    assert nets["demo-street-signs"]["owner"] == operator
    # Again: nothing changes (same owner, same rules version).
    other = Ed25519PrivateKey.generate()
    assert registry_main(["seed-demo", *db, "--owner-key", public_hex(other)]) == 0
    again = _datanets(db, capsys)
    assert again[REVIEWED]["owner"] == fingerprint(user)
    assert {k: v["rulesVersion"] for k, v in again.items()} == {
        k: v["rulesVersion"] for k, v in nets.items()
    }
    assert registry_main(["seed-demo", *db, "--owner-key", "zz"]) == 2
    assert "64 hex" in capsys.readouterr().err
