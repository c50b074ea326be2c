"""Our real artefacts read by tools nobody here wrote.

- the envelope `contributor-desk sign` writes, verified by securesystemslib's DSSE;
- the JSON-LD `contributor-desk export --format croissant` writes, loaded by mlcroissant, whose
  records must be the rows of the catalogued files;
- our tus client (app/registry_client/tus.py) uploading to the official Node tus server
  (@tus/server + @tus/file-store, locked in bench/node-tus/), including a resume.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.registry_client.http import RegistryHttp, RetryPolicy
from app.registry_client.tokens import TokenCache
from app.registry_client.tus import TusClient, UploadHooks, UploadStopped
from app.signing.identity import public_hex
from tests.integration.cli_helpers import ROOT, run_cli

NODE_TUS = ROOT / "bench" / "node-tus"


def _ok(*args: str | Path, data_dir: Path) -> str:
    r = run_cli(*args, data_dir=data_dir)
    assert r.code == 0, (args, r.out, r.err)
    return r.out


@pytest.fixture
def table(tmp_path: Path) -> Path:
    folder = tmp_path / "animals"
    folder.mkdir()
    with (folder / "animals.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(
            [["id", "label", "score"], [1, "cat", 0.5], [2, "dog", 1.5], [3, "émeu", 2.0]]
        )
    return folder


# -- securesystemslib verifies what `sign` wrote ------------------------------------------------


@pytest.mark.slow
def test_securesystemslib_verifies_the_envelope_written_by_sign(
    data_dir: Path, isolated_keyring: Path, tmp_path: Path, table: Path
) -> None:
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey

    _ok("identity", "init", data_dir=data_dir)
    me = json.loads(_ok("identity", "show", "--json", data_dir=data_dir))
    item = json.loads(_ok("add", table, "--license", "CC0-1.0", "--json", data_dir=data_dir))
    envelope_file, manifest_file = tmp_path / "e.json", tmp_path / "m.json"
    _ok(
        "--registry",
        "http://127.0.0.1:9",
        "sign",
        str(item["id"]),
        "--datanet",
        "animals",
        "--out",
        envelope_file,
        "--manifest-out",
        manifest_file,
        data_dir=data_dir,
    )

    theirs = Envelope.from_dict(json.loads(envelope_file.read_bytes()))
    key = SSlibKey(me["fingerprint"], "ed25519", "ed25519", {"public": me["publicKey"]})
    assert list(theirs.verify([key], 1)) == [me["fingerprint"]]
    statement = json.loads(theirs.payload)
    assert statement["subject"][0]["digest"]["sha256"] == (
        hashlib.sha256(manifest_file.read_bytes()).hexdigest()
    )

    stranger = Ed25519PrivateKey.generate()
    other = SSlibKey(me["fingerprint"], "ed25519", "ed25519", {"public": public_hex(stranger)})
    with pytest.raises(VerificationError):
        theirs.verify([other], 1)
    tampered = json.loads(envelope_file.read_bytes())
    tampered["payload"] = base64.b64encode(theirs.payload.replace(b"animals", b"animalz")).decode()
    with pytest.raises(VerificationError):
        Envelope.from_dict(tampered).verify([key], 1)


# -- mlcroissant reads what `export` wrote -----------------------------------------------------


# mlcroissant parses JSON-LD with rdflib's ConjunctiveGraph, which rdflib deprecates; only that
# third-party message is ignored, validation issues are checked explicitly.
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
@pytest.mark.slow
def test_mlcroissant_reads_the_records_of_the_exported_croissant(
    data_dir: Path, table: Path
) -> None:
    import mlcroissant as mlc

    item = json.loads(_ok("add", table, "--license", "CC-BY-4.0", "--json", data_dir=data_dir))
    # contentUrl values are relative to the contribution root, so the file goes there.
    out = table / "croissant.json"
    _ok("export", str(item["id"]), "--format", "croissant", "--out", out, data_dir=data_dir)

    dataset = mlc.Dataset(jsonld=str(out))
    issues = dataset.metadata.ctx.issues
    assert not issues.errors and not issues.warnings, issues.report()
    assert dataset.metadata.license == ["https://spdx.org/licenses/CC-BY-4.0.html"]
    (file_object,) = dataset.metadata.distribution
    assert file_object.content_url == "animals.csv"
    assert file_object.sha256 == hashlib.sha256((table / "animals.csv").read_bytes()).hexdigest()
    rs = "records/animals.csv"
    rows = [
        (r[f"{rs}/id"], r[f"{rs}/label"].decode(), r[f"{rs}/score"])
        for r in dataset.records(record_set=rs)
    ]
    assert rows == [(1, "cat", 0.5), (2, "dog", 1.5), (3, "émeu", 2.0)]


# -- our tus client against the Node reference server ------------------------------------------


def _install_node_tus(require_tool: Callable[[str], str]) -> str:
    """node and the locked @tus packages: skipped locally without npm, a failure in CI."""
    node = require_tool("node")
    npm = require_tool("npm")
    lock_path = Path(tempfile.gettempdir()) / "contributor-desk-node-tus.lock"
    with lock_path.open("w") as lock:  # other test runs on this machine may install too
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (NODE_TUS / "node_modules" / "@tus" / "file-store").is_dir():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=NODE_TUS,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert done.returncode == 0, f"npm ci in {NODE_TUS} failed:\n{done.stderr}"
    return node


@pytest.fixture
def node_tus(tmp_path: Path, require_tool: Callable[[str], str]) -> Iterator[tuple[str, Path]]:
    """The Node server on a loopback port: (its base URL, the folder it stores uploads in)."""
    node = _install_node_tus(require_tool)
    store = tmp_path / "node-store"
    store.mkdir()
    log = (tmp_path / "node.log").open("w")
    proc = subprocess.Popen(
        [node, "server.js", str(store)],
        cwd=NODE_TUS,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), (line, (tmp_path / "node.log").read_text())
        yield line.removeprefix("listening on ").strip(), store
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def _client(base: str, chunk: int) -> TusClient:
    """Our TusClient as the upload queue builds it. The Node server has no login: a token
    is placed in the shared token cache, so the client sends it and the server ignores it."""
    key = Ed25519PrivateKey.generate()
    tokens = TokenCache()
    tokens.put(base, public_hex(key), "not-checked-by-node")
    http = RegistryHttp(base, lambda: key, tokens=tokens, retry=RetryPolicy(attempts=2))
    return TusClient(http, chunk_size=chunk, endpoint="/files/")


def _stored(store: Path, url: str) -> bytes:
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    return (store / upload_id).read_bytes()


def test_our_tus_client_uploads_to_the_node_reference_server(
    node_tus: tuple[str, Path], tmp_path: Path
) -> None:
    base, store = node_tus
    blob = tmp_path / "blob.bin"
    data = os.urandom(300 * 1024 + 17)
    blob.write_bytes(data)
    client = _client(base, chunk=64 * 1024)
    confirmed: list[int] = []
    try:
        url = client.upload(
            blob,
            len(data),
            {"filename": "blob.bin", "sha256": hashlib.sha256(data).hexdigest()},
            hooks=UploadHooks(on_confirmed=confirmed.append),
        )
        assert client.offset(url) == len(data)
    finally:
        client.http.close()
    assert url.startswith(f"{base}/files/")
    assert confirmed == [64 * 1024 * n for n in range(1, 5)] + [len(data)]  # five PATCHes
    assert _stored(store, url) == data
    info = json.loads((store / f"{url.rsplit('/', 1)[1]}.json").read_text())
    assert info["size"] == len(data)
    assert info["metadata"] == {"filename": "blob.bin", "sha256": hashlib.sha256(data).hexdigest()}


def test_our_tus_client_resumes_an_upload_on_the_node_reference_server(
    node_tus: tuple[str, Path], tmp_path: Path
) -> None:
    base, store = node_tus
    blob = tmp_path / "blob.bin"
    data = os.urandom(256 * 1024)
    blob.write_bytes(data)
    stop = threading.Event()
    first = _client(base, chunk=64 * 1024)
    urls: list[str] = []

    def after_first_chunk(offset: int) -> None:
        if offset > 0:
            stop.set()

    try:
        with pytest.raises(UploadStopped):
            first.upload(
                blob,
                len(data),
                {"filename": "blob.bin"},
                hooks=UploadHooks(on_url=urls.append, on_confirmed=after_first_chunk),
                stop=stop,
            )
    finally:
        first.http.close()
    (url,) = urls
    assert len(_stored(store, url)) == 64 * 1024  # the server kept the first chunk only

    again = _client(base, chunk=64 * 1024)  # a new process would start like this
    confirmed: list[int] = []
    try:
        assert again.offset(url) == 64 * 1024
        resumed = again.upload(
            blob, len(data), {}, url=url, hooks=UploadHooks(on_confirmed=confirmed.append)
        )
    finally:
        again.http.close()
    assert resumed == url
    assert confirmed == [64 * 1024 * n for n in range(1, 5)]  # HEAD, then the 3 chunks left
    assert _stored(store, url) == data
    upload_id = url.rsplit("/", 1)[1]
    assert sorted(p.name for p in store.iterdir()) == [upload_id, f"{upload_id}.json"]
