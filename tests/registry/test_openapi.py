"""docs/registry-openapi.json must be exactly what the code generates (drift test)."""

from __future__ import annotations

from pathlib import Path

from registry.cli import openapi_document, render_openapi

DOC = Path(__file__).resolve().parents[2] / "docs" / "registry-openapi.json"
REGENERATE = ".venv/bin/contributor-registry openapi --out docs/registry-openapi.json"


def test_committed_openapi_matches_code() -> None:
    assert DOC.exists(), f"docs/registry-openapi.json is missing; run: {REGENERATE}"
    assert DOC.read_text(encoding="utf-8") == render_openapi(), (
        f"docs/registry-openapi.json drifted from the code; regenerate with: {REGENERATE}"
    )


def test_every_json_route_declares_its_response_schema() -> None:
    doc = openapi_document()
    untyped = []
    for path, ops in doc["paths"].items():  # type: ignore[union-attr]
        for method, op in ops.items():
            ok = op["responses"].get("200") or op["responses"].get("201")
            if ok and "content" in ok:
                schema = ok["content"].get("application/json", {}).get("schema", {})
                if not schema or schema == {}:
                    untyped.append(f"{method.upper()} {path}")
    assert untyped == []


def test_error_shape_is_documented() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]  # type: ignore[index]
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    unauthorized = doc["paths"]["/v1/contributions"]["post"]["responses"]["401"]  # type: ignore[index]
    assert unauthorized["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
