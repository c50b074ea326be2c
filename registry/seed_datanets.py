"""Demo datanets for `seed-demo`: a few collections with different rules, so the app's picker
and live rule check have something to show, and one with review on owned by the demo user
(`--owner-key`, the app's own public key in demo mode), so the "My datanets" page has a review
queue. Idempotent: existing datanets keep their rules; the review datanet moves from the demo
operator to the demo user's key the first time that key is given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.domain.datanet_rules import DatanetRules
from app.signing.identity import public_key_problem
from registry.auth import fingerprint_of
from registry.db.models import ROLE_CONTRIBUTOR, Datanet, Key

REVIEWED = "demo-curated-birds"

DEMO_DATANETS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (
        "demo-street-signs",
        "Street signs (demo)",
        "Photos of traffic signs with their YOLO or COCO labels.",
        {"formats": ["jpg", "jpeg", "png", "txt", "yaml", "json"], "maxFiles": 20_000},
    ),
    (
        "demo-labelled-text",
        "Labelled text (demo)",
        "Short texts with a label, as tables: one row per example, no copies.",
        {
            "formats": ["csv", "tsv", "parquet", "jsonl"],
            "requiredColumns": ["text", "label"],
            "minRecords": 20,
            "noDuplicates": True,
            "licenses": ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0"],
        },
    ),
    (
        REVIEWED,
        "Curated birds (demo)",
        "Bird sightings checked by the curator before they are accepted.",
        {"formats": ["csv", "parquet", "jpg", "png"], "review": True, "noDuplicates": True},
    ),
)


def _owner_key(session: Session, public_key: str) -> str:
    """The fingerprint of the demo user's key, registered as a contributor if new."""
    pub = public_key.strip().lower()
    try:
        raw = bytes.fromhex(pub)
    except ValueError:
        raise ValueError("the owner key must be 64 hex characters (raw Ed25519)") from None
    if len(raw) != 32:
        raise ValueError("the owner key must be 64 hex characters (raw Ed25519)")
    problem = public_key_problem(raw)
    if problem is not None:
        raise ValueError(f"the owner key is refused: {problem}")
    fpr = fingerprint_of(pub)
    if session.get(Key, fpr) is None:
        session.add(Key(fingerprint=fpr, public_key=pub, role=ROLE_CONTRIBUTOR))
        session.flush()
    return fpr


def ensure_demo_datanets(session: Session, operator: str, owner_key: str | None) -> list[str]:
    """Create the demo datanets that are missing; the ids created."""
    owner = _owner_key(session, owner_key) if owner_key else None
    made = []
    for net_id, name, about, rules in DEMO_DATANETS:
        row = session.get(Datanet, net_id)
        stored = DatanetRules.from_json(rules).to_json()
        if row is None:
            session.add(
                Datanet(
                    id=net_id,
                    name=name,
                    description=about,
                    rules=stored,
                    owner_fingerprint=(owner or operator) if net_id == REVIEWED else operator,
                    rules_version=1,
                    created_at=datetime.now(UTC),
                )
            )
            made.append(net_id)
        elif net_id == REVIEWED and owner and row.owner_fingerprint == operator:
            row.owner_fingerprint = owner
    return made
