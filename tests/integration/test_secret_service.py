"""KeyStore against a real Secret Service: gnome-keyring started under dbus-run-session.

The child runs in its own D-Bus session with HOME in tmp_path, so the developer's real
keyring is never touched; the login collection is created and unlocked with a throwaway
password piped to gnome-keyring-daemon.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.keyrings import find_key_leaks

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from app.signing.identity import fingerprint, private_raw
from app.signing.keystore import KeyStore

store = KeyStore()
key = Ed25519PrivateKey.generate()
fpr = fingerprint(key)
status = store.status()
store.store(fpr, private_raw(key))
read_back = store.load(fpr) == private_raw(key)
deleted = store.delete(fpr)
after = store.load(fpr)
# A second key stays stored so the test can check it is not readable in gnome-keyring's files.
kept = Ed25519PrivateKey.generate()
store.store(fingerprint(kept), private_raw(kept))
kept_ok = store.load(fingerprint(kept)) == private_raw(kept)
print(json.dumps({
    "kept": private_raw(kept).hex(),
    "keptReadBack": kept_ok,
    "backend": store.backend_name(),
    "secure": status.secure,
    "readBack": read_back,
    "deleted": deleted,
    "afterDelete": after,
    "deletedAgain": store.delete(fpr),
}))
"""


@pytest.mark.secret_service
def test_keystore_with_real_secret_service(
    tmp_path: Path, require_tool: Callable[[str], str]
) -> None:
    dbus_run_session = require_tool("dbus-run-session")
    require_tool("gnome-keyring-daemon")
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "child.py").write_text(CHILD)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    script = (
        "echo -n throwaway-pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null"
        f" && exec {shlex.quote(sys.executable)} {shlex.quote(str(tmp_path / 'child.py'))}"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PYTHONPATH": str(REPO),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        "LANG": "C.UTF-8",
    }
    proc = subprocess.run(
        [dbus_run_session, "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    kept = bytes.fromhex(result.pop("kept"))
    assert result == {
        "keptReadBack": True,
        "backend": "keyring.backends.SecretService.Keyring",
        "secure": True,
        "readBack": True,
        "deleted": True,
        "afterDelete": None,
        "deletedAgain": False,
    }
    # The secret went to gnome-keyring's own store in the temporary HOME, encrypted there.
    assert list((home / ".local" / "share" / "keyrings").glob("*.keyring"))
    assert find_key_leaks(kept, [home], exclude=[]) == []
