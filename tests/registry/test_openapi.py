"""docs/registry-openapi.json must be exactly what the code generates (drift test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

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
            if ok and "application/json" in ok.get("content", {}):
                schema = ok["content"]["application/json"].get("schema", {})
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


def test_committed_openapi_is_a_valid_document() -> None:
    """A real OpenAPI 3.1 validator (openapi-spec-validator), not only our own reading."""
    validate(json.loads(DOC.read_text(encoding="utf-8")))
    validate(openapi_document())


def test_the_validator_catches_an_undeclared_path_parameter() -> None:
    """The defect it would have caught: an operation on /v1/uploads/{upload_id} that does not
    declare upload_id."""
    doc = openapi_document()
    op = doc["paths"]["/v1/uploads/{upload_id}"]["options"]  # type: ignore[index]
    op["parameters"] = [p for p in op.get("parameters", []) if p["in"] != "path"]
    with pytest.raises(OpenAPIValidationError, match="upload_id"):
        validate(doc)


def test_every_operation_declares_its_path_parameters() -> None:
    doc = openapi_document()
    for path, ops in doc["paths"].items():  # type: ignore[union-attr]
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}"
