"""Demo data: a demo operator, a few "demo-" models and simulated usage of accepted
contributions.

Everything is labelled demo (model ids start with "demo-", models/events/ledger rows carry
demo=True) and goes through the same ingestion code as POST /v1/usage, so the ledger invariant
holds for demo data too.

Usage is a history that only grows, like real usage: each contribution and model has one
deterministic stream of events that starts when the contribution was accepted (a burst of
first uses in its first minutes, then a daily rate that grows over weeks, quieter weekends).
Each run sends the events of that stream up to `now` (at most `days` back); event ids are the
stream's sequence numbers, so a run sends again only what earlier runs sent (duplicates) plus
what happened since. Past days therefore never change, and no usage predates acceptance.

Evidence is real (docs/protocol.md, "Usage evidence"): with the registry's blob store at hand
(`blobs_dir`), exact-match attributions name a span of one of the contribution's actual files
(offset, length and the SHA-256 of those very bytes, the text as excerpt for text files), and
retrieval attributions name a file, half of them with a chunk span; influence attributions
carry none (operator-asserted). Without the blob store (or the bytes of a file), exact-match
comes without evidence and retrieval names the file only. Evidence is drawn from its own
generator per event, so the event stream is the same with or without it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from registry.auth import fingerprint_of
from registry.blobstore import FileBlobStore
from registry.db.models import ROLE_OPERATOR, STATE_ACCEPTED, Contribution, ContributionFile, Key
from registry.db.usage_models import (
    METHOD_EXACT_MATCH,
    METHOD_INFLUENCE,
    METHOD_RETRIEVAL,
    Model,
)
from registry.ledger import AttributionIn, EventIn, IngestResult, ingest_events
from registry.routes.usage import DEMO_PREFIX
from registry.seed_datanets import ensure_demo_datanets
from registry.settings import RegistrySettings
from registry.settlement import settle_pending
from registry.usage_rules import MAX_EXCERPT_CHARS

DEFAULT_SEED = 20261126
BATCH = 1000
GROWTH_DAYS = 90  # the daily rate grows from 30 % to 150 % over this many days after acceptance
LAUNCH_PER_DAY = 300.0  # extra rate per model at acceptance (0.2 a minute): a demo shows usage
LAUNCH_MINUTES = 20.0  # soon after a submission; it fades with this time constant


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


EVIDENCE_FILES = 8  # files per contribution that evidence is drawn from
EVIDENCE_PREFIX = 64 * 1024  # bytes of each file read for spans
CHUNK = 512  # retrieval chunk size
MAX_SPAN = 160  # bytes of an exact-match span


@dataclass(frozen=True)
class DemoFile:
    sha256: str
    size: int
    head: bytes | None  # the first EVIDENCE_PREFIX bytes, None if the blob is not at hand


class DemoEvidence:
    """Evidence for simulated attributions, drawn from the contributions' own files."""

    def __init__(self, files: dict[str, list[DemoFile]]) -> None:
        self.files = files

    @classmethod
    def load(cls, session: Session, cids: list[str], blobs_dir: Path | None) -> DemoEvidence:
        """Up to EVIDENCE_FILES files of each contribution (by path), with their first bytes
        from the blob store if there is one."""
        rows = session.execute(
            select(ContributionFile.contribution_id, ContributionFile.sha256, ContributionFile.size)
            .where(ContributionFile.contribution_id.in_(cids))
            .order_by(ContributionFile.contribution_id, ContributionFile.path)
        ).all()
        store = FileBlobStore(blobs_dir) if blobs_dir is not None and blobs_dir.is_dir() else None
        files: dict[str, list[DemoFile]] = {}
        try:
            for cid, sha, size in rows:
                mine = files.setdefault(cid, [])
                if len(mine) < EVIDENCE_FILES:
                    mine.append(DemoFile(sha, int(size), _head(store, sha, int(size))))
        finally:
            if store is not None:
                store.close()
        return cls(files)

    def for_attribution(self, cid: str, method: str, key: str) -> dict[str, object] | None:
        """The evidence of one attribution (deterministic in `key`), or None."""
        files = self.files.get(cid)
        if not files or method == METHOD_INFLUENCE:
            return None
        rng = random.Random(key)
        if method == METHOD_RETRIEVAL:
            f = files[rng.randrange(len(files))]
            chunk = rng.random() < 0.5
            if not chunk or not f.head:
                return {"fileSha256": f.sha256}
            offset = CHUNK * rng.randrange((len(f.head) + CHUNK - 1) // CHUNK)
            return _span(f, offset, min(CHUNK, len(f.head) - offset))
        readable = [f for f in files if f.head]
        if not readable:
            return None
        f = readable[rng.randrange(len(readable))]
        assert f.head is not None
        offset, length = _text_span(f.head, rng) or _byte_span(f.head, rng)
        evidence = _span(f, offset, length)
        try:
            excerpt = f.head[offset : offset + length].decode("utf-8")[:MAX_EXCERPT_CHARS]
        except UnicodeDecodeError:
            return evidence
        if "\x00" not in excerpt:
            evidence["excerpt"] = excerpt
        return evidence


def _head(store: FileBlobStore | None, sha: str, size: int) -> bytes | None:
    if store is None or size == 0:
        return None
    try:
        with store.open(sha) as fh:
            return fh.read(EVIDENCE_PREFIX)
    except OSError:
        return None


def _span(f: DemoFile, offset: int, length: int) -> dict[str, object]:
    assert f.head is not None
    span = f.head[offset : offset + length]
    return {
        "fileSha256": f.sha256,
        "offset": offset,
        "length": length,
        "spanSha256": hashlib.sha256(span).hexdigest(),
    }


@functools.lru_cache(maxsize=64)
def _text_lines(head: bytes) -> tuple[tuple[int, int], ...]:
    """(offset, length) of the non-blank lines of a UTF-8 text; none for binary bytes."""
    # The prefix may end inside a character; only whole lines before it count.
    text = head[: head.rfind(b"\n") + 1] if b"\n" in head else head
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return ()
    if b"\x00" in text:
        return ()
    lines, start = [], 0
    for line in text.split(b"\n"):
        if line.strip():
            lines.append((start, len(line.rstrip(b"\r"))))
        start += len(line) + 1
    return tuple(lines)


def _text_span(head: bytes, rng: random.Random) -> tuple[int, int] | None:
    """(offset, length) of one non-blank line of a UTF-8 text (at most MAX_SPAN bytes, cut at
    a character boundary), or None for binary bytes."""
    lines = _text_lines(head)
    if not lines:
        return None
    offset, length = lines[rng.randrange(len(lines))]
    length = min(length, MAX_SPAN)
    while length > 1:  # never end inside a UTF-8 sequence
        try:
            head[offset : offset + length].decode("utf-8")
            break
        except UnicodeDecodeError:
            length -= 1
    return offset, length


def _byte_span(head: bytes, rng: random.Random) -> tuple[int, int]:
    length = min(len(head), rng.randint(32, MAX_SPAN))
    return rng.randrange(len(head) - length + 1), length


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


def _day_noise(seed: int, cid: str, model_id: str, day: date) -> float:
    return random.Random(f"{seed}/{cid}/{model_id}/{day.isoformat()}").uniform(0.7, 1.3)


def _rate_per_day(model: DemoModel, age: timedelta, moment: datetime, noise: float) -> float:
    """Events per day of one model for one contribution `age` after its acceptance: a burst of
    first uses, then growth over weeks, quieter weekends, some day-to-day noise."""
    days = age.total_seconds() / 86_400
    growth = 0.3 + 1.2 * min(days, GROWTH_DAYS) / GROWTH_DAYS
    weekly = 0.6 if moment.weekday() >= 5 else 1.0
    launch = LAUNCH_PER_DAY * math.exp(-age.total_seconds() / 60 / LAUNCH_MINUTES)
    return model.daily_events * growth * weekly * noise + launch


def _pick(choices: tuple[tuple[str, float], ...], rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for value, prob in choices:
        acc += prob
        if x < acc:
            return value
    return choices[-1][0]


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def simulated_events(
    accepted: list[tuple[str, datetime]],
    *,
    days: int,
    seed: int,
    now: datetime,
    evidence: DemoEvidence | None = None,
) -> Iterator[EventIn]:
    """The simulated events of each (contribution, acceptance time) from `now - days` to
    `now`. Each contribution and model is one stream drawn from its own generator, from the
    acceptance on: what a later `now` yields is this run's events plus newer ones. With
    `evidence`, exact-match and retrieval attributions carry evidence from the files."""
    now = _as_utc(now)
    earliest = now - timedelta(days=days)
    accepted = sorted(((cid, _as_utc(at)) for cid, at in accepted), key=lambda c: (c[1], c[0]))
    for cid, start in accepted:
        for model in DEMO_MODELS:
            rng = random.Random(f"{seed}/{cid}/{model.id}")
            at, n, noise_day, noise = start, 0, None, 1.0
            while True:
                if at.date() != noise_day:
                    noise_day, noise = at.date(), _day_noise(seed, cid, model.id, at.date())
                rate = _rate_per_day(model, at - start, at, noise)
                at = at + timedelta(days=rng.expovariate(rate))
                # Every draw below happens for every event, sent or not: the stream is fixed.
                fee = rng.randint(*model.fee_micro)
                method = _pick(model.methods, rng)
                weight = round(rng.uniform(0.3, 1.0), 3)
                share, pick, other_weight = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
                if at > now:
                    break
                n += 1
                if at < earliest:
                    continue
                event_id = f"demo-{seed}-{cid}-{model.id}-{n}"
                picked = [(cid, weight)]
                # Another contribution accepted before this use may share it.
                others = [c for c, when in accepted if c != cid and when < at]
                if others and share < 0.3:
                    picked.append((others[int(pick * len(others))], round(other_weight, 3)))
                attributions = [
                    AttributionIn(
                        c,
                        w,
                        method,
                        None
                        if evidence is None
                        else evidence.for_attribution(c, method, f"{event_id}/{c}"),
                    )
                    for c, w in picked
                ]
                yield EventIn(
                    event_id=event_id,
                    model_id=model.id,
                    at=at,
                    fee_micro=fee,
                    attributions=tuple(attributions),
                )


def seed_demo(
    session_factory: sessionmaker[Session],
    *,
    days: int = 90,
    seed: int = DEFAULT_SEED,
    share_ppm: int = RegistrySettings.contributor_share_ppm,
    now: datetime | None = None,
    owner_key: str | None = None,
    blobs_dir: Path | None = None,
) -> SeedReport:
    """Create the demo operator and models, then the simulated usage of accepted
    contributions up to `now` (at most `days` back). Demo datanets too (registry.seed_datanets;
    `owner_key`: the public key that owns the one with review). `blobs_dir`: the registry's
    blob store, where exact-match and retrieval evidence is read from."""
    now = now or datetime.now(UTC)
    with session_factory() as session:
        operator = _ensure_operator(session, seed)
        session.flush()
        _ensure_models(session, operator)
        ensure_demo_datanets(session, operator, owner_key)
        session.commit()
        # An accepted contribution's last change is its acceptance (nothing changes after it).
        accepted = [
            (str(cid), at)
            for cid, at in session.execute(
                select(Contribution.id, Contribution.updated_at)
                .where(Contribution.state == STATE_ACCEPTED)
                .order_by(Contribution.seq)
            )
        ]
        evidence = DemoEvidence.load(session, [cid for cid, _ in accepted], blobs_dir)
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

    for ev in simulated_events(accepted, days=days, seed=seed, now=now, evidence=evidence):
        batch.append(ev)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    # The demo data is read at once: settle it here rather than leave it to a settler.
    settle_pending(session_factory, share_ppm=share_ppm)
    return SeedReport(
        operator=operator,
        models=tuple(m.id for m in DEMO_MODELS),
        contributions=len(accepted),
        accepted=len(total.accepted),
        duplicates=len(total.duplicates),
        rejected=len(total.rejected),
    )
