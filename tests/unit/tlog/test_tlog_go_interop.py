"""Our log, checked by the Go reference implementation (golang.org/x/mod/sumdb/note and
sumdb/tlog, Debian's golang-golang-x-mod-dev): Go verifies our signed checkpoint, our inclusion
and consistency proofs, reads our hash tiles and entry bundles through its verifying tile reader
and proves the same things from them; we verify notes Go signed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.tlog import (
    Checkpoint,
    DirectoryTileStorage,
    Signer,
    TiledLog,
    Verifier,
    encode_bundle,
    entries_path,
    leaf_hash,
    open_checkpoint,
    open_note,
    sign_note,
)

GOPATH = Path("/usr/share/gocode")
SOURCE = Path(__file__).parent / "gocheck" / "main.go"
ORIGIN = "registry.example/log"
SIZE = 257_000  # three tile levels, partial tiles at each, tile indexes past 999


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} is required in CI (.ci/run must install it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def gocheck(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], dict[str, Any]]:
    go = shutil.which("go")
    if go is None:
        _missing("go not installed")
    if not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        _missing("golang.org/x/mod sources not installed")
    assert go is not None
    build = tmp_path_factory.mktemp("gocheck")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(build / "cache"),
        "GOFLAGS": "",
    }
    exe = build / "gocheck"
    subprocess.run(
        [go, "build", "-o", str(exe), str(SOURCE)], check=True, env=env, cwd=build, timeout=300
    )

    def run(directory: Path) -> dict[str, Any]:
        out = subprocess.run(
            [str(exe), str(directory)], check=True, capture_output=True, timeout=120
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    return run


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hashes(items: list[str] | None) -> list[bytes]:
    return [base64.b64decode(x) for x in items or []]


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, TiledLog, Signer, list[bytes]]:
    """A log of SIZE entries appended in settlement-sized batches, served as files."""
    root = tmp_path_factory.mktemp("log")
    entries = [b'{"entry":%d}' % i for i in range(SIZE)]
    log = TiledLog(DirectoryTileStorage(root))
    for lo, n in [(0, 1), (1, 255), (256, 44), (300, 65_236), (65_536, 191_463), (256_999, 1)]:
        log.append([leaf_hash(e) for e in entries[lo : lo + n]])
    assert log.size == SIZE
    for b in BUNDLES:
        chunk = entries[b * 256 : (b + 1) * 256]
        path = root / entries_path(b, len(chunk))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_bundle(chunk))
    signer = Signer.generate(ORIGIN)
    (root / "checkpoint").write_bytes(Checkpoint(ORIGIN, SIZE, log.root()).sign(signer))
    return root, log, signer, entries


BUNDLES = [0, 1, 100, 999, 1000, SIZE // 256]
INDEXES = [0, 1, 255, 256, 299, 300, 65_535, 65_536, 255_999, 256_000, 256_999, 12_345]
OLD_SIZES = [1, 2, 255, 256, 300, 65_536, 256_999]


def _request(
    root: Path, log: TiledLog, signer: Signer, entries: list[bytes], sign_text: str
) -> None:
    request = {
        "vkey": signer.verifier.vkey,
        "skey": signer.skey,
        "signText": sign_text,
        "inclusion": [
            {
                "index": i,
                "entry": _b64(entries[i]),
                "proof": [_b64(p) for p in log.inclusion_proof(i)],
            }
            for i in INDEXES
        ]
        + [  # a leaf that is not the logged one: Go must refuse it
            {
                "index": 7,
                "entry": _b64(b"forged"),
                "proof": [_b64(p) for p in log.inclusion_proof(7)],
            }
        ],
        "consistency": [
            {
                "old": m,
                "oldRoot": _b64(log.root(m)),
                "proof": [_b64(p) for p in log.consistency_proof(m)],
            }
            for m in OLD_SIZES
        ]
        + [  # a fork: an old root the new tree does not extend
            {
                "old": 300,
                "oldRoot": _b64(log.root(299)),
                "proof": [_b64(p) for p in log.consistency_proof(300)],
            }
        ],
        "bundles": BUNDLES,
    }
    (root / "request.json").write_text(json.dumps(request))


def test_go_verifies_our_checkpoint_proofs_tiles_and_bundles(
    gocheck: Callable[[Path], dict[str, Any]],
    published: tuple[Path, TiledLog, Signer, list[bytes]],
) -> None:
    root, log, signer, entries = published
    cp_text = Checkpoint(ORIGIN, SIZE, log.root()).text()
    _request(root, log, signer, entries, cp_text)
    res = gocheck(root)

    assert res["checkpointError"] == ""
    assert res["signerName"] == ORIGIN
    assert res["signerHash"] == f"{signer.key_id:08x}"
    assert (res["origin"], res["size"]) == (ORIGIN, SIZE)
    assert base64.b64decode(res["root"]) == log.root()
    # Go's verifying tile reader recomputes the tree hash from our tiles
    assert res["treeHashError"] == ""
    assert base64.b64decode(res["treeHash"]) == log.root()

    *good, forged = res["inclusionErrors"]
    assert good == [""] * len(INDEXES)
    assert forged != ""
    for i, proof in zip(INDEXES, res["goRecordProofs"], strict=False):
        assert _hashes(proof) == log.inclusion_proof(i), i

    *good, fork = res["consistencyErrors"]
    assert good == [""] * len(OLD_SIZES)
    assert fork != ""
    for m, proof in zip(OLD_SIZES, res["goTreeProofs"], strict=False):
        assert _hashes(proof) == log.consistency_proof(m), m

    assert res["bundleErrors"] == [""] * len(BUNDLES)

    # Go signing with our signer key gives our bytes (Ed25519 is deterministic)
    assert res["ourKeyNote"].encode() == sign_note(cp_text, signer)
    # and a checkpoint Go signed with a key it generated verifies here
    go_verifier = Verifier.from_vkey(res["goVkey"])
    cp, note = open_checkpoint(res["goNote"].encode(), go_verifier, origin=ORIGIN)
    assert cp == Checkpoint(ORIGIN, SIZE, log.root())
    assert open_note(res["goNote"].encode(), [go_verifier]).signatures == note.signatures


def test_go_rejects_a_checkpoint_signed_by_another_key(
    gocheck: Callable[[Path], dict[str, Any]],
    published: tuple[Path, TiledLog, Signer, list[bytes]],
    tmp_path: Path,
) -> None:
    root, log, signer, entries = published
    other = Signer.generate(ORIGIN)  # same name, other key: Go must not accept it for ours
    (tmp_path / "checkpoint").write_bytes(Checkpoint(ORIGIN, SIZE, log.root()).sign(other))
    _request(tmp_path, log, signer, entries, "text\n")
    assert gocheck(tmp_path)["checkpointError"] != ""
