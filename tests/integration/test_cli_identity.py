"""End to end through the real `contributor-desk` command: identity, add, sign, verify.

Each command is a separate process sharing only the data dir and the test's isolated keyring
(PYTHON_KEYRING_BACKEND), exactly as a user's shell session would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.signing import dsse
from app.signing.identity import private_raw
from app.signing.keyfile import read_key_file
from app.signing.rotation import verify_rotation
from tests.support.keyrings import find_key_leaks

REPO = Path(__file__).resolve().parents[2]
PASS = "integration passphrase"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """One CLI process; the developer's own passphrase variable never leaks into it."""
    full_env = {k: v for k, v in os.environ.items() if k != "CONTRIBUTOR_DESK_PASSPHRASE"}
    full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=full_env,
        stdin=subprocess.DEVNULL,  # not a TTY: no prompt may block the test
        timeout=120,
        cwd=REPO,
    )


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    proc = run(*args, env=env)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def _leaks(tmp_path: Path, data_dir: Path, env: dict[str, str] | None = None) -> list[str]:
    """Export the key to learn its bytes, then look for them outside the keyring folder."""
    backup = tmp_path / "probe.key"
    backup.unlink(missing_ok=True)
    ok("identity", "export", str(backup), env={"CONTRIBUTOR_DESK_PASSPHRASE": PASS, **(env or {})})
    raw = private_raw(read_key_file(backup, PASS))
    return find_key_leaks(
        raw, [data_dir, tmp_path / "home", tmp_path / "work"], [tmp_path / "keyring"]
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    d = tmp_path / "work" / "birds"
    d.mkdir(parents=True)
    (d / "labels.csv").write_text("file,label\na.jpg,sparrow\n")
    (d / "a.jpg").write_bytes(b"\xff\xd8\xff sparrow")
    return d


@pytest.mark.slow
def test_identity_sign_verify_end_to_end(
    data_dir: Path, isolated_keyring: Path, tmp_path: Path, dataset: Path
) -> None:
    out = ok("identity", "init")
    assert "Created your identity" in out and "FileTestKeyring" in out
    shown = json.loads(ok("identity", "show", "--json"))
    assert set(shown) >= {"publicKey", "fingerprint", "backend"}
    assert len(shown["publicKey"]) == 64 and "FileTestKeyring" in shown["backend"]
    assert _leaks(tmp_path, data_dir) == []

    added = json.loads(
        ok("add", str(dataset), "--title", "Birds", "--license", "CC0-1.0", "--json")
    )
    item_id = str(added["id"])
    work = tmp_path / "work"
    env_file, manifest_file = work / "e.json", work / "m.json"
    ok(
        "--registry",
        "http://127.0.0.1:9999/",
        "sign",
        item_id,
        "--out",
        str(env_file),
        "--datanet",
        "birds",
        "--manifest-out",
        str(manifest_file),
    )
    envelope = dsse.Envelope.from_json(env_file.read_bytes())
    assert envelope.payload_type == dsse.PAYLOAD_TYPE_INTOTO
    assert envelope.signatures[0].keyid == shown["fingerprint"]

    out = ok(
        "verify",
        str(env_file),
        "--manifest",
        str(manifest_file),
        "--data",
        str(dataset),
        "--registry",
        "http://127.0.0.1:9999",
    )
    assert shown["grouped"] in out and "manifest digest" in out
    listed = json.loads(ok("show", item_id, "--json"))
    assert listed["state"] == "signed"

    replay = run("verify", str(env_file), "--registry", "https://elsewhere.example")
    assert replay.returncode == 3
    assert "another registry (replay)" in replay.stderr and "Traceback" not in replay.stderr

    (dataset / "a.jpg").write_bytes(b"\xff\xd8\xff sparrox")
    changed = run("verify", str(env_file), "--manifest", str(manifest_file), "--data", str(dataset))
    assert changed.returncode == 3
    assert "a.jpg" in changed.stdout and "no longer match" in changed.stderr

    bad = json.loads(env_file.read_text())
    bad["signatures"][0]["sig"] = bad["signatures"][0]["sig"][:40]
    env_file.write_text(json.dumps(bad))
    broken = run("verify", str(env_file))
    assert broken.returncode == 3 and broken.stderr.startswith("error: signature #1")

    rotated = json.loads(ok("identity", "rotate", "--json", "--out", str(work / "rot.json")))
    assert verify_rotation(rotated["rotationStatement"])[0] == shown["fingerprint"]
    assert rotated["rotatedFrom"] == shown["fingerprint"]
    assert _leaks(tmp_path, data_dir) == []


@pytest.mark.slow
def test_insecure_keyring_needs_a_passphrase(
    data_dir: Path, isolated_keyring: Path, tmp_path: Path
) -> None:
    fail_env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    refused = run("identity", "init", env=fail_env)
    assert refused.returncode == 3
    assert "does not protect secrets" in refused.stderr
    assert "--passphrase-file" in refused.stderr and "Traceback" not in refused.stderr
    assert not (data_dir / "identity.key").exists()

    pw_file = tmp_path / "pw.txt"
    pw_file.write_text(PASS + "\n")
    out = ok("identity", "init", "--passphrase-file", str(pw_file), env=fail_env)
    assert "encrypted-file" in out and "identity.key" in out
    assert json.loads(ok("identity", "show", "--json", env=fail_env))["storage"] == "encrypted-file"
    assert _leaks(tmp_path, data_dir, fail_env) == []

    wrong = run(
        "identity",
        "export",
        str(tmp_path / "b.key"),
        env={**fail_env, "CONTRIBUTOR_DESK_PASSPHRASE": "not the passphrase"},
    )
    assert wrong.returncode == 3 and "wrong passphrase" in wrong.stderr


@pytest.mark.slow
def test_export_import_round_trip_and_bad_files(
    data_dir: Path, isolated_keyring: Path, tmp_path: Path
) -> None:
    ok("identity", "init")
    fpr = json.loads(ok("identity", "show", "--json"))["fingerprint"]
    backup = tmp_path / "home" / "backup.key"
    pw = {"CONTRIBUTOR_DESK_PASSPHRASE": PASS}
    ok("identity", "export", str(backup), env=pw)
    exists = run("identity", "export", str(backup), env=pw)
    assert exists.returncode == 2 and "already exists" in exists.stderr
    no_pw = run("identity", "export", str(tmp_path / "x.key"))
    assert no_pw.returncode == 3 and "CONTRIBUTOR_DESK_PASSPHRASE" in no_pw.stderr

    other = {"CONTRIBUTOR_DESK_DATA_DIR": str(tmp_path / "data2")}
    (isolated_keyring / "keyring.json").unlink()
    wrong = run(
        "identity", "import", str(backup), env={**other, "CONTRIBUTOR_DESK_PASSPHRASE": "nope nope"}
    )
    assert wrong.returncode == 3 and "wrong passphrase" in wrong.stderr
    (tmp_path / "junk.key").write_text("{not json")
    junk = run("identity", "import", str(tmp_path / "junk.key"), env={**other, **pw})
    assert junk.returncode == 3 and "is corrupt" in junk.stderr
    ok("identity", "import", str(backup), env={**other, **pw})
    assert json.loads(ok("identity", "show", "--json", env=other))["fingerprint"] == fpr
    (isolated_keyring / "LOCKED").touch()
    locked = run("identity", "export", str(tmp_path / "again.key"), env={**other, **pw})
    assert locked.returncode == 3 and "locked" in locked.stderr
