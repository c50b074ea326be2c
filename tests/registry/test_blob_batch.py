"""POST /v1/uploads/batch: many small blobs in one request, each verified, none partial."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import event, select

from registry.auth import as_utc
from registry.blobstore import FileBlobStore
from registry.db.models import Blob
from tests.registry.conftest import TEST_REGISTRY
from tests.support.registry_actors import Contributor, contribution_body

FILES = {f"f{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(5)}
OCTETS = {"Content-Type": "application/octet-stream"}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _body(blobs: list[tuple[str, int, bytes]]) -> bytes:
    index = json.dumps({"blobs": [{"sha256": s, "size": n} for s, n, _ in blobs]}).encode()
    return len(index).to_bytes(4, "big") + index + b"".join(d for _, _, d in blobs)


def _contribution(client: TestClient, who: Contributor, files: dict[str, bytes]) -> str:
    body = contribution_body(who.key, files, registry=TEST_REGISTRY)
    r = client.post("/v1/contributions", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _post(client: TestClient, who: Contributor, cid: str, body: bytes) -> Response:
    return client.post(
        "/v1/uploads/batch",
        params={"contribution": cid},
        content=body,
        headers={**who.headers, **OCTETS},
    )


def test_batch_stores_verified_blobs_and_finalize_accepts(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    cid = _contribution(client, alice, FILES)
    blobs = [(_sha(d), len(d), d) for d in FILES.values()]
    r = _post(client, alice, cid, _body(blobs))
    assert r.status_code == 200, r.text
    assert sorted(r.json()["stored"]) == sorted(s for s, _, _ in blobs)
    for sha, _, data in blobs:
        with app.state.blobs.open(sha) as fh:
            assert fh.read() == data
    again = _post(client, alice, cid, _body(blobs[:1]))
    assert again.json()["present"] == [blobs[0][0]]
    fin = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert fin.json()["state"] == "accepted", fin.text


def test_bad_hash_and_unlisted_blobs_are_rejected_others_stored(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    cid = _contribution(client, alice, FILES)
    good = FILES["f1.txt"]
    wrong = FILES["f2.txt"]
    forged = (_sha(wrong), len(wrong), b"X" * len(wrong))  # right size, wrong bytes
    stranger = b"not in the contribution"
    body = _body([(_sha(good), len(good), good), forged, (_sha(stranger), 23, stranger)])
    r = _post(client, alice, cid, body)
    out = r.json()
    assert out["stored"] == [_sha(good)]
    assert {x["reason"] for x in out["rejected"]} == {"sha256 mismatch", "not in this contribution"}
    assert not app.state.blobs.has(_sha(wrong))
    assert not app.state.blobs.has(_sha(stranger))


def test_malformed_bodies_and_other_owners_are_refused(
    client: TestClient, alice: Contributor, bob: Contributor
) -> None:
    cid = _contribution(client, alice, FILES)
    data = FILES["f0.txt"]
    assert _post(client, alice, cid, b"\x00\x00").status_code == 400
    short = _body([(_sha(data), len(data), data)])[:-3]
    assert _post(client, alice, cid, short).status_code == 400
    assert _post(client, bob, cid, _body([(_sha(data), len(data), data)])).status_code == 404
    nobody = client.post("/v1/uploads/batch", params={"contribution": cid}, content=b"x")
    assert nobody.status_code == 401


@contextmanager
def _statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app runs inside the block (executemany counts once)."""
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(app.state.engine, "before_cursor_execute", count)


def test_many_files_cost_a_bounded_number_of_queries(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    # 700 files: above the IN-query chunk (500) and the threaded finalize check (256).
    files = {f"d/f{i:04d}.txt": f"small file {i}\n".encode() for i in range(699)}
    files["empty.txt"] = b""  # a blob of 0 bytes is present too (not "falsy, so missing")
    body = contribution_body(alice.key, files, registry=TEST_REGISTRY)
    with _statements(app) as create_sql:
        r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert len(r.json()["missingBlobs"]) == 700
    assert len(create_sql) < 25, create_sql  # files go in by executemany, not row by row
    blobs = [(_sha(d), len(d), d) for d in files.values()]
    with _statements(app) as batch_sql:
        out = _post(client, alice, cid, _body(blobs)).json()
    assert len(out["stored"]) == 700 and not out["rejected"]
    assert len(batch_sql) < 25, batch_sql  # only the batch's rows, in IN chunks
    with _statements(app) as fin_sql:
        fin = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert fin.json()["state"] == "accepted", fin.text
    # A constant number (sign-in, files, holdings, the transparency-log append), never one
    # per file (700 here).
    assert len(fin_sql) < 30, fin_sql


def _loose_only(app: FastAPI) -> FileBlobStore:
    """Swap in a store that writes every blob as its own file (no packs)."""
    app.state.blobs.close()
    store = FileBlobStore(app.state.settings.blobs_dir, pack_min=10**9)
    app.state.blobs = store
    return store


def test_finalize_rejects_a_lost_or_resized_blob_among_many(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    store = _loose_only(app)
    files = {f"f{i:04d}.txt": f"content {i}\n".encode() for i in range(300)}
    cid = _contribution(client, alice, files)
    blobs = [(_sha(d), len(d), d) for d in files.values()]
    assert len(_post(client, alice, cid, _body(blobs)).json()["stored"]) == 300
    # One blob file shrinks on disk behind the database's back: finalize checks the store.
    store.path_for(_sha(files["f0123.txt"])).write_bytes(b"short")
    fin = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers).json()
    assert fin["state"] == "rejected"
    assert [(x["code"], x["path"]) for x in fin["reasons"]] == [("blob_size_mismatch", "f0123.txt")]
    store.close()


def test_finalize_lists_blobs_whose_files_are_gone(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    store = _loose_only(app)
    files = {f"f{i:04d}.txt": f"content {i}\n".encode() for i in range(300)}
    cid = _contribution(client, alice, files)
    blobs = [(_sha(d), len(d), d) for d in files.values()]
    _post(client, alice, cid, _body(blobs))
    gone = _sha(files["f0007.txt"])
    store.path_for(gone).unlink()
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["missingBlobs"] == [gone]
    store.close()


def test_a_batch_becomes_one_pack_and_a_damaged_pack_is_asked_for_again(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    files = {f"f{i:04d}.txt": f"content {i}\n".encode() * 3 for i in range(100)}
    cid = _contribution(client, alice, files)
    blobs = [(_sha(d), len(d), d) for d in files.values()]
    assert len(_post(client, alice, cid, _body(blobs)).json()["stored"]) == 100
    root = app.state.settings.blobs_dir
    packs = list((root / "packs").glob("*.pack"))
    assert len(packs) == 1
    assert not [p for p in root.glob("??/??/*")], "small blobs of a batch are not loose files"
    # The pack loses its tail behind the database's back: its blobs are absent, not served.
    with packs[0].open("r+b") as fh:
        fh.truncate(packs[0].stat().st_size - 10)
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert r.status_code == 409
    assert sorted(r.json()["error"]["details"]["missingBlobs"]) == sorted(s for s, _, _ in blobs)
    # The rows exist but the bytes do not: a re-sent batch stores them again (not "present").
    again = _post(client, alice, cid, _body(blobs)).json()
    assert len(again["stored"]) == 100 and not again["present"]
    fin = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert fin.json()["state"] == "accepted", fin.text
    for sha, _, data in blobs[:3]:
        with app.state.blobs.open(sha) as fh:
            assert fh.read() == data


def test_finalize_with_packed_blobs_asks_only_for_the_one_not_sent(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    files = {f"f{i:04d}.txt": f"packed {i}\n".encode() for i in range(40)}
    cid = _contribution(client, alice, files)
    blobs = [(_sha(d), len(d), d) for d in files.values()]
    held_back = blobs.pop(17)
    assert len(_post(client, alice, cid, _body(blobs)).json()["stored"]) == 39
    assert len(list((app.state.settings.blobs_dir / "packs").glob("*.pack"))) == 1
    r = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["missingBlobs"] == [held_back[0]]
    assert _post(client, alice, cid, _body([held_back])).json()["stored"] == [held_back[0]]
    fin = client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers)
    assert fin.json()["state"] == "accepted", fin.text


def test_batch_rows_record_when_each_blob_was_stored(
    client: TestClient, alice: Contributor, app: FastAPI
) -> None:
    cid = _contribution(client, alice, FILES)
    before = datetime.now(UTC) - timedelta(seconds=1)
    blobs = [(_sha(d), len(d), d) for d in FILES.values()]
    assert _post(client, alice, cid, _body(blobs)).status_code == 200
    after = datetime.now(UTC) + timedelta(seconds=1)
    with app.state.sessions() as session:
        rows = session.scalars(select(Blob).where(Blob.sha256.in_([s for s, _, _ in blobs])))
        stamps = [(r.size, as_utc(r.stored_at)) for r in rows]
    assert sorted(n for n, _ in stamps) == sorted(n for _, n, _ in blobs)
    assert all(before <= t <= after for _, t in stamps), stamps
    if app.state.engine.dialect.name == "sqlite":  # stored as the ORM stores it (no "+00:00")
        with app.state.engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT stored_at FROM blobs").scalars().all()
        assert raw and all(
            re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", v) for v in raw
        ), raw
