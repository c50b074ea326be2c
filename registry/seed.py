"""Demo data: a demo operator, a few "demo-" models and simulated usage over the last days.

Everything is labelled demo (model ids start with "demo-", models/events/ledger rows carry
demo=True) and goes through the same ingestion code as POST /v1/usage, so the ledger invariant
holds for demo data too. Event ids are derived from (seed, contribution, day, model, n), which
makes re-running idempotent: a second run the same day only reports duplicates, and a run after
new contributions were accepted adds usage for those alone.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from registry.auth import fingerprint_of
from registry.db.models import ROLE_OPERATOR, STATE_ACCEPTED, Contribution, Key
from registry.db.usage_models import (
    METHOD_EXACT_MATCH,
    METHOD_INFLUENCE,
    METHOD_RETRIEVAL,
    Model,
)
from registry.ledger import AttributionIn, EventIn, IngestResult, ingest_events
from registry.routes.usage import DEMO_PREFIX
from registry.settings import RegistrySettings

DEFAULT_SEED = 20261126
BATCH = 1000


@dataclass(frozen=True)
class DemoModel:
    id: str
    name: str
    description: str
    fee_micro: tuple[int, int]  # per event, inclusive range
    daily_events: float  # mean per contribution per day at full popularity
    methods: tuple[tuple[str, float], ...]  # method, probability


DEMO_MODELS = (
    DemoModel(
        "demo-llama-7b",
        "Demo Llama 7B (simulated)",
        "Simulated demo model: a 7B chat model; attribution by influence functions.",
        (1_500, 6_000),
        3.0,
        ((METHOD_INFLUENCE, 0.8), (METHOD_EXACT_MATCH, 0.2)),
    ),
    DemoModel(
        "demo-mistral-small",
        "Demo Mistral Small (simulated)",
        "Simulated demo model: a small instruction model; exact-match attribution.",
        (800, 3_000),
        2.0,
        ((METHOD_EXACT_MATCH, 0.6), (METHOD_INFLUENCE, 0.4)),
    ),
    DemoModel(
        "demo-rag-search",
        "Demo RAG search (simulated)",
        "Simulated demo model: retrieval-augmented answers citing retrieved documents.",
        (200, 1_200),
        5.0,
        ((METHOD_RETRIEVAL, 1.0),),
    ),
)


@dataclass(frozen=True)
class SeedReport:
    operator: str
    models: tuple[str, ...]
    contributions: int
    accepted: int
    duplicates: int
    rejected: int

    def describe(self) -> str:
        return (
            f"demo data: {len(self.models)} models, {self.contributions} accepted contributions, "
            f"{self.accepted} new usage events ({self.duplicates} already present)"
        )


def demo_operator_key(seed: int) -> Ed25519PrivateKey:
    """A deterministic key for the demo operator (it never signs anything that matters)."""
    secret = hashlib.sha256(f"contributor-desk demo operator {seed}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(secret)


def _ensure_operator(session: Session, seed: int) -> str:
    raw = (
        demo_operator_key(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    pub = raw.hex()
    fpr = fingerprint_of(pub)
    key = session.get(Key, fpr)
    if key is None:
        session.add(Key(fingerprint=fpr, public_key=pub, role=ROLE_OPERATOR))
    else:
        key.role = ROLE_OPERATOR
    return fpr


def _ensure_models(session: Session, operator: str) -> None:
    for m in DEMO_MODELS:
        assert m.id.startswith(DEMO_PREFIX)
        row = session.get(Model, m.id)
        if row is None:
            session.add(
                Model(
                    id=m.id,
                    name=m.name,
                    description=m.description,
                    operator_fingerprint=operator,
                    demo=True,
                )
            )


def _popularity(day_index: int, days: int, day: date, rng: random.Random) -> float:
    """Growth over the window, quieter weekends, some noise: charts that look like usage."""
    growth = 0.3 + 1.2 * (day_index + 1) / days
    weekly = 0.6 if day.weekday() >= 5 else 1.0
    return growth * weekly * rng.uniform(0.7, 1.3)


def _poisson(mean: float, rng: random.Random) -> int:
    # Knuth's method; means here are small (< 20).
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _pick(choices: tuple[tuple[str, float], ...], rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for value, prob in choices:
        acc += prob
        if x < acc:
            return value
    return choices[-1][0]


def simulated_events(
    contribution_ids: list[str], *, days: int, seed: int, now: datetime
) -> Iterator[EventIn]:
    """Deterministic simulated events for each contribution over the `days` days up to now."""
    today = now.astimezone(UTC).date()
    for cid in contribution_ids:
        others = [c for c in contribution_ids if c != cid]
        for day_index in range(days):
            day = today - timedelta(days=days - 1 - day_index)
            for model in DEMO_MODELS:
                rng = random.Random(f"{seed}/{cid}/{day.isoformat()}/{model.id}")
                mean = model.daily_events * _popularity(day_index, days, day, rng)
                for n in range(_poisson(mean, rng)):
                    at = datetime.combine(day, time(0, tzinfo=UTC)) + timedelta(
                        seconds=rng.randrange(86_400)
                    )
                    if at > now:
                        at = now - timedelta(seconds=rng.randrange(1, 3600))
                    method = _pick(model.methods, rng)
                    attributions = [(cid, round(rng.uniform(0.3, 1.0), 3), method)]
                    if others and rng.random() < 0.3:
                        attributions.append((rng.choice(others), round(rng.uniform(0.05, 0.3), 3),
                                             method))  # fmt: skip
                    yield EventIn(
                        event_id=f"demo-{seed}-{cid}-{day:%Y%m%d}-{model.id}-{n}",
                        model_id=model.id,
                        at=at,
                        fee_micro=rng.randint(*model.fee_micro),
                        attributions=tuple(AttributionIn(c, w, m) for c, w, m in attributions),
                    )


def seed_demo(
    session_factory: sessionmaker[Session],
    *,
    days: int = 90,
    seed: int = DEFAULT_SEED,
    share_ppm: int = RegistrySettings.contributor_share_ppm,
    now: datetime | None = None,
) -> SeedReport:
    """Create the demo operator and models, then simulated usage for accepted contributions."""
    now = now or datetime.now(UTC)
    with session_factory() as session:
        operator = _ensure_operator(session, seed)
        session.flush()
        _ensure_models(session, operator)
        session.commit()
        cids = list(
            session.scalars(
                select(Contribution.id)
                .where(Contribution.state == STATE_ACCEPTED)
                .order_by(Contribution.seq)
            )
        )
    total = IngestResult()
    batch: list[EventIn] = []

    def flush() -> None:
        with session_factory() as session:
            result = ingest_events(
                session, operator=operator, events=batch, share_ppm=share_ppm, now=now
            )
            session.commit()
        total.accepted.extend(result.accepted)
        total.duplicates.extend(result.duplicates)
        total.rejected.extend(result.rejected)
        batch.clear()

    for ev in simulated_events(cids, days=days, seed=seed, now=now):
        batch.append(ev)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return SeedReport(
        operator=operator,
        models=tuple(m.id for m in DEMO_MODELS),
        contributions=len(cids),
        accepted=len(total.accepted),
        duplicates=len(total.duplicates),
        rejected=len(total.rejected),
    )
