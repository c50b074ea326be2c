"""Test actors for the registry: a key holder that signs in and builds signed contributions.

Uses the app's own signing and manifest code, exactly as the desktop app does.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.manifest.canonical import Manifest, ManifestEntry
from app.signing import dsse
from app.signing.identity import fingerprint, public_hex
from app.signing.statement import build_statement

AUTH_DOMAIN = b"contributor-desk-auth-v1\n"


class HttpLike(Protocol):
    def post(self, url: str, **kwargs: Any) -> Any: ...


@dataclass
class Contributor:
    """A key holder talking to one registry (TestClient or httpx.Client with base_url)."""

    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    token: str = ""

    @property
    def public_key(self) -> str:
        return public_hex(self.key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def sign_in(self, http: HttpLike) -> str:
        ch = http.post("/v1/auth/challenge", json={"publicKey": self.public_key})
        assert ch.status_code == 200, ch.text
        nonce = ch.json()["nonce"]
        sig = self.key.sign(AUTH_DOMAIN + nonce.encode("ascii"))
        r = http.post(
            "/v1/auth/token",
            json={
                "publicKey": self.public_key,
                "nonce": nonce,
                "signature": base64.b64encode(sig).decode(),
            },
        )
        assert r.status_code == 200, r.text
        self.token = str(r.json()["token"])
        return self.token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def manifest_for(files: dict[str, bytes]) -> Manifest:
    return Manifest.from_entries(
        ManifestEntry(path=p, size=len(b), sha256=hashlib.sha256(b).hexdigest())
        for p, b in files.items()
    )


def contribution_body(
    signer: Ed25519PrivateKey,
    files: dict[str, bytes],
    *,
    registry: str,
    datanet: str = "open-data",
    title: str = "Test set",
    kind: str = "dataset",
    parent: str | None = None,
    license: str = "CC-BY-4.0",
    created_at: str = "2026-11-26T08:00:00Z",
    rules_version: int | None = None,
    parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body of POST /v1/contributions for these files, signed by `signer`
    (`rules_version`: the datanet rules version signed; `parts`: declared format report)."""
    manifest = manifest_for(files)
    data = manifest.canonical_bytes()
    statement = build_statement(
        manifest_digest=hashlib.sha256(data).hexdigest(),
        registry=registry,
        datanet=datanet,
        title=title,
        kind=kind,
        parent=parent,
        license=license,
        root=manifest.root,
        created_at=created_at,
        rules_version=rules_version,
    )
    env = dsse.sign(statement, dsse.PAYLOAD_TYPE_INTOTO, [signer])
    return {
        "envelope": env.to_dict(),
        "manifest": base64.b64encode(data).decode(),
        "metadata": {
            "datanet": datanet,
            "title": title,
            "kind": kind,
            "parent": parent,
            "license": license,
            **({"parts": parts} if parts is not None else {}),
        },
    }


def tus_metadata(sha256: str, contribution_id: str) -> str:
    def b64(v: str) -> str:
        return base64.b64encode(v.encode()).decode()

    return f"sha256 {b64(sha256)},contribution {b64(contribution_id)}"
