"""Test data for usage/rewards tests: accepted contributions straight in the database, an
in-process registry with an operator and contributors signed in, and usage event builders.

Contributions are inserted directly (the signed create/upload/finalize flow has its own tests);
everything about usage and rewards goes through the real HTTP routes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from registry.app import create_app
from registry.db.models import (
    ROLE_CONTRIBUTOR,
    STATE_ACCEPTED,
    Contribution,
    ContributionFile,
    Key,
)
from registry.settings import RegistrySettings
from tests.support.registry_actors import Contributor


def ensure_key(session: Session, public_key: str, fingerprint: str, role: str) -> None:
    if session.get(Key, fingerprint) is None:
        session.add(Key(fingerprint=fingerprint, public_key=public_key, role=role))
        session.flush()


def add_contributions(
    session: Session,
    owner_fingerprint: str,
    n: int,
    *,
    public_key: str | None = None,
    state: str = STATE_ACCEPTED,
    title: str = "Test set",
) -> list[str]:
    """Insert `n` contributions of the owner (key row created if missing); returns their ids."""
    ensure_key(session, public_key or secrets.token_hex(32), owner_fingerprint, ROLE_CONTRIBUTOR)
    ids: list[str] = []
    for i in range(n):
        cid = "c_" + secrets.token_hex(12)
        digest = hashlib.sha256(cid.encode()).hexdigest()
        session.add(
            Contribution(
                id=cid,
                owner_fingerprint=owner_fingerprint,
                signer_fingerprint=owner_fingerprint,
                envelope={"payloadType": "test", "payload": "", "signatures": []},
                envelope_sha256=digest,
                manifest=b"{}",
                manifest_sha256=digest,
                meta={},
                kind="dataset",
                datanet="open-data",
                title=f"{title} {i}",
                license="CC-BY-4.0",
                state=state,
                reasons=[],
                file_count=1,
                total_size=1,
            )
        )
        ids.append(cid)
    session.commit()
    return ids


def add_files(
    session: Session, contribution_id: str, files: dict[str, bytes], blobs: Any = None
) -> dict[str, str]:
    """Give a contribution these files (manifest rows; their bytes into the blob store
    `blobs` if given); returns path -> sha256."""
    shas = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
    for path, data in files.items():
        session.add(
            ContributionFile(
                contribution_id=contribution_id, path=path, size=len(data), sha256=shas[path]
            )
        )
    session.commit()
    if blobs is not None:
        blobs.put_many([(shas[p], len(d), d) for p, d in files.items()])
    return shas


def event(
    event_id: str,
    model_id: str,
    attributions: list[tuple[str, float, str]],
    *,
    fee_micro: int = 1_000_000,
    at: datetime | str | None = None,
) -> dict[str, Any]:
    """One usage event as JSON (attributions as (contributionId, weight, method))."""
    when = at or datetime.now(UTC)
    return {
        "eventId": event_id,
        "modelId": model_id,
        "at": when if isinstance(when, str) else when.isoformat(),
        "feeMicro": fee_micro,
        "attributions": [
            {"contributionId": c, "weight": w, "method": m} for c, w, m in attributions
        ],
    }


def settle(client: Any, headers: dict[str, str], timeout_s: float = 30) -> dict[str, Any]:
    """Ask the registry to settle everything it received so far and wait for it (the
    settlement read with `wait`); the settlement status, all events settled."""
    r = client.get("/v1/usage/settlement", params={"wait": timeout_s}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@dataclass
class UsageWorld:
    """A running in-process registry with one operator, its model and signed-in contributors."""

    client: TestClient
    sessions: sessionmaker[Session]
    operator: Contributor
    model_id: str
    contributors: list[Contributor] = field(default_factory=list)
    operators: list[Contributor] = field(default_factory=list)
    contributions: dict[str, list[str]] = field(default_factory=dict)  # fingerprint -> ids

    def post_usage(
        self, events: list[dict[str, Any]], who: Contributor | None = None, *, settle: bool = True
    ) -> Any:
        """POST the batch; then (unless `settle=False`) wait until it is settled, so that the
        ledger and the usage series show it."""
        r = self.client.post(
            "/v1/usage", json={"events": events}, headers=(who or self.operator).headers
        )
        if settle:
            self.settle()
        return r

    def settle(self) -> dict[str, Any]:
        """Wait until everything received so far is settled; the settlement status."""
        return settle(self.client, self.operator.headers)

    def ids_of(self, who: Contributor) -> list[str]:
        return self.contributions[who.fingerprint]


@contextmanager
def usage_world(
    db_url: str,
    tmp_path: Path,
    *,
    contributors: int = 2,
    per_contributor: int = 3,
    operators: int = 1,
    rate_limit_per_minute: int = 0,
    **settings: Any,
) -> Iterator[UsageWorld]:
    """Operators[0] owns model "test-model"; each contributor owns `per_contributor` accepted
    contributions. The rate limit is off unless asked for."""
    ops = [Contributor() for _ in range(operators)]
    operator = ops[0]
    app = create_app(
        RegistrySettings(
            db_url=db_url,
            blobs_dir=tmp_path / "blobs",
            operator_keys=tuple(o.public_key for o in ops),
            rate_limit_per_minute=rate_limit_per_minute,
            access_log=False,
            **settings,
        )
    )
    with TestClient(app) as client:
        sessions: sessionmaker[Session] = app.state.sessions
        for op in ops:
            op.sign_in(cast(Any, client))
        r = client.post(
            "/v1/models",
            json={"id": "test-model", "name": "Test model"},
            headers=operator.headers,
        )
        assert r.status_code in (200, 201), r.text
        world = UsageWorld(client, sessions, operator, "test-model", operators=ops)
        for _ in range(contributors):
            who = Contributor()
            who.sign_in(cast(Any, client))
            with sessions() as session:
                ids = add_contributions(session, who.fingerprint, per_contributor)
            world.contributors.append(who)
            world.contributions[who.fingerprint] = ids
        try:
            yield world
        finally:
            if app.state.settler is not None:  # before the engine goes (it holds a session)
                app.state.settler.stop()
            app.state.engine.dispose()
