"""The in-toto Statement v1 that a contribution envelope carries.

The subject is the canonical manifest; the predicate binds the signature to one registry,
one datanet, one version of that datanet's rules and one contribution, so a valid envelope
cannot be replayed elsewhere. `rulesVersion` is absent from statements made before datanets
had versioned rules; an absent version means version 1 (the rules a datanet is created with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.domain import boundedjson
from app.domain.errors import VerificationError
from app.manifest.canonical import is_sha256_hex

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://contributor-desk.dev/contribution/v1"
SUBJECT_NAME = "manifest.json"


def canonical_json(obj: Any) -> bytes:
    """UTF-8, sorted keys, no insignificant whitespace: one byte string per statement."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def utc_timestamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise_registry(url: str) -> str:
    return url.strip().rstrip("/")


@dataclass(frozen=True, slots=True)
class ContributionPredicate:
    registry: str
    datanet: str
    title: str
    kind: str
    parent: str | None
    license: str
    root: str
    created_at: str
    rules_version: int | None = None  # None: not signed (read as version 1)

    @property
    def signed_rules_version(self) -> int:
        return self.rules_version if self.rules_version is not None else 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "registry": self.registry,
            "datanet": self.datanet,
            "title": self.title,
            "kind": self.kind,
            "parent": self.parent,
            "license": self.license,
            "root": self.root,
            "createdAt": self.created_at,
        }
        if self.rules_version is not None:
            out["rulesVersion"] = self.rules_version
        return out


@dataclass(frozen=True, slots=True)
class ContributionStatement:
    manifest_digest: str
    predicate: ContributionPredicate

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": SUBJECT_NAME, "digest": {"sha256": self.manifest_digest}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": self.predicate.to_dict(),
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())


def build_statement(
    *,
    manifest_digest: str,
    registry: str,
    datanet: str,
    title: str,
    kind: str,
    parent: str | None,
    license: str,
    root: str,
    created_at: str | None = None,
    rules_version: int | None = None,
) -> bytes:
    """The canonical statement bytes to sign (`rules_version`: the datanet's rules version
    the contribution was checked against; None leaves it out, read as version 1)."""
    if not is_sha256_hex(manifest_digest) or not is_sha256_hex(root):
        raise ValueError("manifest digest and root must be lowercase sha256 hex")
    if rules_version is not None and (isinstance(rules_version, bool) or rules_version < 1):
        raise ValueError("the rules version is a positive integer")
    predicate = ContributionPredicate(
        registry=normalise_registry(registry),
        datanet=datanet,
        title=title,
        kind=kind,
        parent=parent,
        license=license,
        root=root,
        created_at=created_at or utc_timestamp(),
        rules_version=rules_version,
    )
    return ContributionStatement(manifest_digest, predicate).to_bytes()


def _str_field(pred: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    if name not in pred:
        raise VerificationError(f"statement predicate has no {name!r}")
    value = pred[name]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise VerificationError(f"statement predicate {name!r} is not a string")
    return value


def parse_statement(payload: bytes) -> ContributionStatement:
    """Parse the received payload (not re-serialised) and check its fixed types."""
    try:
        obj = boundedjson.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise VerificationError("envelope payload is not a JSON statement") from None
    if not isinstance(obj, dict):
        raise VerificationError("envelope payload is not a JSON object")
    if obj.get("_type") != STATEMENT_TYPE:
        raise VerificationError(
            f"statement type is {obj.get('_type')!r}, expected {STATEMENT_TYPE!r}"
        )
    if obj.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError(
            f"predicateType is {obj.get('predicateType')!r}, expected {PREDICATE_TYPE!r}"
        )
    subjects = obj.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise VerificationError("statement must have exactly one subject (the manifest)")
    subject = subjects[0]
    if subject.get("name") != SUBJECT_NAME:
        raise VerificationError(f"statement subject is {subject.get('name')!r}, not the manifest")
    digest = subject.get("digest")
    if not isinstance(digest, dict) or not is_sha256_hex(digest.get("sha256")):
        raise VerificationError("statement subject has no sha256 digest")
    pred = obj.get("predicate")
    if not isinstance(pred, dict):
        raise VerificationError("statement has no predicate object")
    values = {n: _str_field(pred, n) for n in ("registry", "datanet", "title", "kind")}
    values.update({n: _str_field(pred, n) for n in ("license", "root", "createdAt")})
    if not is_sha256_hex(values["root"]):
        raise VerificationError("statement predicate 'root' is not a sha256 hex digest")
    predicate = ContributionPredicate(
        registry=values["registry"] or "",
        datanet=values["datanet"] or "",
        title=values["title"] or "",
        kind=values["kind"] or "",
        parent=_str_field(pred, "parent", optional=True),
        license=values["license"] or "",
        root=values["root"] or "",
        created_at=values["createdAt"] or "",
        rules_version=_rules_version(pred),
    )
    return ContributionStatement(str(digest["sha256"]), predicate)


def _rules_version(pred: dict[str, Any]) -> int | None:
    if "rulesVersion" not in pred:
        return None
    value = pred["rulesVersion"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VerificationError("statement predicate 'rulesVersion' is not a positive integer")
    return value


def check_statement(
    statement: ContributionStatement,
    *,
    manifest_digest: str | None = None,
    registry: str | None = None,
    datanet: str | None = None,
    root: str | None = None,
    rules_version: int | None = None,
) -> None:
    """Refuse a statement about other data, for another registry, datanet or version of the
    datanet's rules (replay)."""
    if manifest_digest is not None and statement.manifest_digest != manifest_digest:
        raise VerificationError(
            "the manifest does not match the signed statement: signed digest "
            f"{statement.manifest_digest}, manifest digest {manifest_digest}"
        )
    if root is not None and statement.predicate.root != root:
        raise VerificationError(
            f"the manifest root {root} differs from the signed root {statement.predicate.root}"
        )
    if registry is not None and normalise_registry(statement.predicate.registry) != (
        normalise_registry(registry)
    ):
        raise VerificationError(
            "statement is for another registry (replay): signed for "
            f"{statement.predicate.registry!r}, expected {normalise_registry(registry)!r}"
        )
    if datanet is not None and statement.predicate.datanet != datanet:
        raise VerificationError(
            "statement is for another datanet (replay): signed for "
            f"{statement.predicate.datanet!r}, expected {datanet!r}"
        )
    if rules_version is not None and statement.predicate.signed_rules_version != rules_version:
        raise VerificationError(
            f"statement was signed against rules version "
            f"{statement.predicate.signed_rules_version} of datanet "
            f"{statement.predicate.datanet!r}; its rules are now version {rules_version}: "
            "check the contribution against the current rules and sign again"
        )
