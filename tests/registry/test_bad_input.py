"""Hostile input answers the same 4xx on SQLite and PostgreSQL, on every route.

PostgreSQL cannot store NUL in text and caps btree index rows near 2.7 KB; SQLite does neither.
These tables walk the registry's own OpenAPI document, so a route added later is covered too.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.domain.boundedjson import MAX_JSON_DEPTH
from app.manifest.canonical import MAX_PATH_BYTES
from tests.support.registry_actors import Contributor, contribution_body, tus_metadata

TEST_REGISTRY = "http://testserver"
NUL = "a\x00b"


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            out.append((method.upper(), path, op))
    return out


def _params(op: dict[str, Any], where: str) -> list[str]:
    return [p["name"] for p in op.get("parameters", []) if p["in"] == where]


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(values.get(m.group(1), "x"), safe=""), path)


def _code(r: Any) -> str | None:
    if not r.content:
        return None
    return str(r.json()["error"]["code"])


def test_nul_in_every_path_parameter_is_refused_alike(
    client: TestClient, alice: Contributor
) -> None:
    cases = 0
    for method, path, op in _operations(client.app):  # type: ignore[arg-type]
        for name in _params(op, "path"):
            url = _fill(path, {name: NUL})
            assert "%00" in url
            r = client.request(method, url, headers={**alice.headers, "Tus-Resumable": "1.0.0"})
            assert r.status_code == 400, f"{method} {url}: {r.status_code} {r.text}"
            if method != "HEAD":
                assert _code(r) == "invalid_characters", f"{method} {url}: {r.text}"
            cases += 1
    assert cases >= 8  # contributions, datanets, uploads (HEAD/PATCH/DELETE/OPTIONS), reads


def test_nul_in_every_query_parameter_is_refused_alike(
    client: TestClient, alice: Contributor
) -> None:
    cases = 0
    for method, path, op in _operations(client.app):  # type: ignore[arg-type]
        for name in _params(op, "query"):
            url = _fill(path, {})
            r = client.request(method, url, params={name: NUL}, headers=alice.headers)
            assert r.status_code == 400, f"{method} {url}?{name}: {r.status_code} {r.text}"
            assert _code(r) == "invalid_characters"
            cases += 1
    assert cases >= 5


def test_unauthenticated_nul_datanet_id_is_400(client: TestClient) -> None:
    r = client.get("/v1/datanets/a%00b")
    assert (r.status_code, _code(r)) == (400, "invalid_characters")


def test_nul_in_every_json_body_is_refused_alike(client: TestClient, alice: Contributor) -> None:
    """A NUL anywhere in a JSON body (value or key, however deep) is 400 before any route."""
    cases = 0
    for method, path, op in _operations(client.app):  # type: ignore[arg-type]
        if "application/json" not in op.get("requestBody", {}).get("content", {}):
            continue
        url = _fill(path, {})
        for body in ({"x": NUL}, {"publicKey": "a" * 63 + "\x00"}, {"a": [{"b\x00": 1}]}):
            r = client.request(method, url, json=body, headers=alice.headers)
            assert r.status_code == 400, f"{method} {url}: {r.status_code} {r.text}"
            assert _code(r) == "invalid_characters"
            cases += 1
    assert cases >= 3 * 5
    # An escaped backslash before "u0000" is not a NUL: that body goes on to the route.
    r = client.post("/v1/auth/challenge", json={"publicKey": "\\u0000"})
    assert (r.status_code, _code(r)) == (422, "invalid_request")


def test_nul_in_a_signed_contribution_is_refused_alike(
    client: TestClient, alice: Contributor
) -> None:
    body = contribution_body(alice.key, {"a.txt": b"a"}, registry=TEST_REGISTRY, title=NUL)
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert (r.status_code, _code(r)) == (400, "invalid_characters")


def test_nul_in_tus_metadata_is_400(client: TestClient, alice: Contributor) -> None:
    headers = {
        **alice.headers,
        "Tus-Resumable": "1.0.0",
        "Upload-Length": "1",
        "Upload-Metadata": tus_metadata("a" * 64, NUL),
    }
    r = client.post("/v1/uploads/", headers=headers)
    assert (r.status_code, _code(r)) == (400, "bad_metadata")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("[" * 50_000 + "]" * 50_000, "json_too_deep"),
        ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1), "json_too_deep"),
        ("[" * 50_000, "json_too_deep"),
        ('{"publicKey": 1e400}', "malformed_json"),
        ('{"publicKey": -1e999}', "malformed_json"),
        ('{"publicKey": Infinity}', "malformed_json"),
        ('{"publicKey": NaN}', "malformed_json"),
        ('{"publicKey": ' + "9" * 5000 + "}", "malformed_json"),
    ],
    ids=["deep-array", "deep-object", "unclosed", "1e400", "-1e999", "Infinity", "NaN", "int5000"],
)
def test_json_outside_the_limits_is_400_on_every_json_route(
    client: TestClient, alice: Contributor, body: str, code: str
) -> None:
    for method, path, op in _operations(client.app):  # type: ignore[arg-type]
        if "application/json" not in op.get("requestBody", {}).get("content", {}):
            continue
        url = _fill(path, {})
        r = client.request(
            method,
            url,
            content=body.encode(),
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 400, f"{method} {url}: {r.status_code} {r.text[:300]}"
        assert _code(r) in (code, "malformed_json"), f"{method} {url}: {r.text[:300]}"


def test_json_at_the_depth_limit_reaches_the_route(client: TestClient) -> None:
    nested: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 1):
        nested = [nested]
    r = client.post("/v1/auth/challenge", json={"publicKey": nested})
    assert (r.status_code, _code(r)) == (422, "invalid_request")


@pytest.mark.parametrize(
    "value", ["²", "1²", "١٢", "+1", "-1", " 1", "1" * 20, "9" * 4301, "0x10", ""]
)
def test_tus_numbers_must_be_ascii_digits(
    client: TestClient, alice: Contributor, value: str
) -> None:
    base = {**alice.headers, "Tus-Resumable": "1.0.0"}
    # Servers read header bytes as Latin-1: b"\xb2" arrives as "²", which str.isdigit() accepts.
    # Other digits (Arabic-Indic here) arrive as their UTF-8 bytes read as Latin-1.
    raw = value.encode("latin-1") if all(ord(c) < 256 for c in value) else value.encode()
    meta = tus_metadata("a" * 64, "c_x")
    r = client.post(
        "/v1/uploads/",
        headers={**base, "Upload-Length": raw, "Upload-Metadata": meta},  # type: ignore[dict-item]
    )
    assert (r.status_code, _code(r)) == (400, "bad_length"), r.text
    r = client.patch(
        "/v1/uploads/" + "0" * 32,
        content=b"x",
        headers={
            **base,
            "Upload-Offset": raw,
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert (r.status_code, _code(r)) == (400, "bad_offset"), r.text


def _submit(client: TestClient, who: Contributor, files: dict[str, bytes]) -> Any:
    body = contribution_body(who.key, files, registry=TEST_REGISTRY)
    return client.post("/v1/contributions", json=body, headers=who.headers)


def test_long_manifest_paths_are_refused_alike_and_the_longest_valid_one_is_stored(
    client: TestClient, alice: Contributor
) -> None:
    longest = "/".join(["d" * 254] * 4) + "/" + "f" * 4
    assert len(longest.encode()) == MAX_PATH_BYTES
    r = _submit(client, alice, {longest: b"kept"})
    assert r.status_code == 201, r.text
    got = client.get(f"/v1/contributions/{r.json()['id']}", headers=alice.headers)
    assert got.status_code == 200

    too_long = "/".join(["d" * 250] * 11)  # ~2.7 KB: past PostgreSQL's btree row limit
    manifest = base64.b64encode(
        json.dumps(
            {
                "fileCount": 1,
                "files": [{"path": too_long, "sha256": "a" * 64, "size": 1}],
                "hashAlg": "sha256",
                "root": "0" * 64,
                "schema": "contributor-desk/manifest/v1",
                "totalSize": 1,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
    ).decode()
    body = contribution_body(alice.key, {"a": b"a"}, registry=TEST_REGISTRY)
    body["manifest"] = manifest
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert 400 <= r.status_code < 500, r.text
    assert "longer than" in r.text


@pytest.mark.parametrize(
    "name", ["a\nb.txt", "tab\there", "esc\x1b[0m", "del\x7f", "c1\x85"], ids=repr
)
def test_control_characters_in_manifest_paths_are_refused(
    client: TestClient, alice: Contributor, name: str
) -> None:
    good = contribution_body(alice.key, {"ok.txt": b"a"}, registry=TEST_REGISTRY)
    raw = base64.b64decode(good["manifest"])
    good["manifest"] = base64.b64encode(
        raw.replace(b'"ok.txt"', json.dumps(name).encode())
    ).decode()
    r = client.post("/v1/contributions", json=good, headers=alice.headers)
    assert 400 <= r.status_code < 500, r.text
    assert "control character" in r.text


@pytest.mark.parametrize("where", ["manifest", "payload"])
def test_deep_json_inside_base64_fields_is_4xx(
    client: TestClient, alice: Contributor, where: str
) -> None:
    """The body's own depth is fine; the manifest or the signed payload inside is not."""
    deep = base64.b64encode(b"[" * 50_000 + b"]" * 50_000).decode()
    body = contribution_body(alice.key, {"a": b"a"}, registry=TEST_REGISTRY)
    if where == "manifest":
        body["manifest"] = deep
    else:
        body["envelope"]["payload"] = deep
    r = client.post("/v1/contributions", json=body, headers=alice.headers)
    assert 400 <= r.status_code < 500, r.text


@pytest.mark.parametrize(
    "size",
    ["1e400", "-1e400", "Infinity", "NaN", "[" * 50_000 + "1" + "]" * 50_000],
    ids=["1e400", "-1e400", "Infinity", "NaN", "deep"],
)
def test_batch_index_outside_the_json_limits_is_400(
    client: TestClient, alice: Contributor, size: str
) -> None:
    created = _submit(client, alice, {"a.txt": b"abc"})
    assert created.status_code == 201, created.text
    index = ('{"blobs": [{"sha256": "' + "a" * 64 + '", "size": ' + size + "}]}").encode()
    r = client.post(
        "/v1/uploads/batch",
        params={"contribution": created.json()["id"]},
        content=len(index).to_bytes(4, "big") + index,
        headers={**alice.headers, "Content-Type": "application/octet-stream"},
    )
    assert (r.status_code, _code(r)) == (400, "bad_batch"), r.text
