"""Who may reference a stored blob without sending it: keys that hold it.

Blobs are stored once, whoever sent them, but a key may only rely on a stored blob if it
uploaded those bytes itself (a batch, or a finished tus upload) or answered a possession
challenge for it (app/manifest/possession.py). Everything a key is told about the blobs of its
contribution depends only on what that key holds, never on what other keys stored: a blob the
key does not hold is "missing" whether or not the registry has it (docs/protocol.md).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, cast

from sqlalchemy import Table, bindparam, delete, select, text
from sqlalchemy.orm import Session

from app.manifest.possession import NONCE_BYTES, possession_proof
from registry.auth import as_utc
from registry.blobstore import BlobStore, CorruptBlobError
from registry.bulkdb import BulkDb
from registry.db.models import Blob, BlobPossession, Contribution, PossessionChallenge

MAX_CHALLENGES = 1000  # blobs per challenge request
MAX_PROOFS = 64  # proofs per request: checking one reads at most ~1 MiB of the stored blob
CHALLENGE_TTL_S = 600
HOW_UPLOAD, HOW_PROOF = "upload", "proof"

log = logging.getLogger(__name__)


def _in_json(conn_dialect: str, column: str, param: str) -> str:
    """`column` is one of the JSON array of text bound as `param` (one parameter, any count)."""
    if conn_dialect == "postgresql":
        return f"{column} = ANY(ARRAY(SELECT json_array_elements_text(CAST(:{param} AS json))))"
    return f"{column} IN (SELECT value FROM json_each(:{param}))"


def held(session: Session, fingerprints: Sequence[str], shas: Iterable[str]) -> set[str]:
    """Which of `shas` the key (or a key it succeeded) holds: recorded possessions plus blobs it
    finished uploading through tus (those are recorded when their contribution is finalized)."""
    wanted = sorted(set(shas))
    if not wanted or not fingerprints:
        return set()
    conn = session.connection()
    dialect = conn.dialect.name
    stmt = text(
        "SELECT sha256 FROM blob_possessions WHERE fingerprint IN :fps AND "
        + _in_json(dialect, "sha256", "shas")
        + " UNION SELECT sha256 FROM uploads WHERE owner_fingerprint IN :fps "
        "AND completed_at IS NOT NULL AND failure IS NULL AND "
        + _in_json(dialect, "sha256", "shas")
    ).bindparams(bindparam("fps", expanding=True))
    rows = conn.execute(stmt, {"fps": list(fingerprints), "shas": json.dumps(wanted)})
    return {row[0] for row in rows}


def missing_for(session: Session, fingerprints: Sequence[str], shas: Iterable[str]) -> list[str]:
    """The blobs among `shas` the key must still send (or prove): those it does not hold, and
    those it holds whose bytes the registry no longer has. Sorted, once each."""
    wanted = set(shas)
    stored = {
        row[0]
        for row in BulkDb(session).select_in(Blob.__tablename__, "sha256", ("sha256",), wanted)
    }
    # Held is looked up for every listed blob, not only the stored ones, so the work done
    # does not depend on what other keys stored.
    return sorted(wanted - (stored & held(session, fingerprints, wanted)))


def grant(session: Session, fingerprint: str, shas: Collection[str], how: str) -> None:
    """Record that `fingerprint` holds `shas` (existing records are kept); the caller commits."""
    if not shas:
        return
    conn = session.connection()
    now: object = datetime.now(UTC)
    column_type = cast(Table, BlobPossession.__table__).c.at.type.dialect_impl(conn.dialect)
    to_db = column_type.bind_processor(conn.dialect)
    if to_db is not None:
        now = to_db(now)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        "INSERT INTO blob_possessions (fingerprint, sha256, how, at) "
        f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT (fingerprint, sha256) DO NOTHING",
        [(fingerprint, sha, how, now) for sha in sorted(set(shas))],
    )


def record_uploads(session: Session, contribution_id: str, fingerprint: str) -> None:
    """Turn the finished tus uploads of a contribution into possession records (so they outlive
    the upload rows); the caller commits."""
    done = (
        "SELECT DISTINCT sha256 FROM uploads WHERE contribution_id = :cid "
        "AND completed_at IS NOT NULL AND failure IS NULL"
    )
    rows = session.connection().execute(text(done), {"cid": contribution_id})
    grant(session, fingerprint, {row[0] for row in rows}, HOW_UPLOAD)


def manifest_sizes(session: Session, contribution_id: str, shas: Sequence[str]) -> dict[str, int]:
    """The manifest size of each of `shas` that the contribution lists (one query)."""
    if not shas:
        return {}
    conn = session.connection()
    # `|| ''` keeps the planner on the sha256 index (a probe per listed blob).
    rows = conn.execute(
        text(
            "SELECT sha256, size FROM contribution_files WHERE contribution_id || '' = :cid AND "
            + _in_json(conn.dialect.name, "sha256", "shas")
        ),
        {"cid": contribution_id, "shas": json.dumps(sorted(set(shas)))},
    )
    return {sha: int(size) for sha, size in rows}


class Challenge(NamedTuple):
    sha256: str
    nonce: str
    expires_at: datetime


def issue(session: Session, contribution: Contribution, shas: Sequence[str]) -> list[Challenge]:
    """A fresh nonce per listed blob (replacing any earlier one), the same whether or not the
    registry stores the blob; commits."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=CHALLENGE_TTL_S)
    wanted = sorted(set(shas))
    table = cast(Table, PossessionChallenge.__table__)
    session.execute(
        delete(table).where(
            table.c.contribution_id == contribution.id,
            (table.c.expires_at <= now) | table.c.sha256.in_(wanted),
        )
    )
    out = [Challenge(sha, secrets.token_hex(NONCE_BYTES), expires) for sha in wanted]
    if out:
        session.execute(
            table.insert(),
            [
                {"contribution_id": contribution.id, "sha256": c.sha256, "nonce": c.nonce,
                 "expires_at": c.expires_at}
                for c in out
            ],
        )  # fmt: skip
    session.commit()
    return out


def forget_challenges(session: Session, contribution_id: str) -> None:
    """Drop a contribution's nonces (it is decided: nothing more to prove); the caller commits."""
    table = cast(Table, PossessionChallenge.__table__)
    session.execute(delete(table).where(table.c.contribution_id == contribution_id))


def _expected(blobs: BlobStore, nonce: bytes, sha: str, size: int) -> str | None:
    """The right proof computed from the stored bytes, or None when they cannot be read."""
    try:
        with blobs.open(sha) as fh:

            def read_at(offset: int, length: int) -> bytes:
                fh.seek(offset)
                return fh.read(length)

            return possession_proof(nonce, sha, size, read_at)
    except (OSError, CorruptBlobError) as exc:
        log.warning("blob %s could not be read for a possession proof: %s", sha, exc)
        return None


def _decoy(nonce: bytes, sha: str, size: int) -> None:
    """The hashing work of a proof check for a blob that is not there, so the CPU spent does
    not tell an absent blob from a present one (the disk reads still differ; see protocol)."""
    possession_proof(nonce, sha, size, lambda _offset, length: bytes(length))


def check(
    session: Session,
    blobs: BlobStore,
    contribution: Contribution,
    fingerprint: str,
    proofs: dict[str, str],
) -> tuple[list[str], list[str]]:
    """(proven, not proven) for {sha256: proof hex}. Each nonce is consumed by its first answer,
    right or wrong. A proof counts only if the stored blob has the manifest's size and the proof
    matches it; "not proven" does not say why. Proven blobs are recorded; commits."""
    now = datetime.now(UTC)
    shas = sorted(proofs)
    table = cast(Table, PossessionChallenge.__table__)
    live = {
        sha: (nonce, expires)
        for sha, nonce, expires in session.execute(
            select(table.c.sha256, table.c.nonce, table.c.expires_at).where(
                table.c.contribution_id == contribution.id, table.c.sha256.in_(shas)
            )
        )
    }
    session.execute(
        delete(table).where(table.c.contribution_id == contribution.id, table.c.sha256.in_(shas))
    )
    sizes = manifest_sizes(session, contribution.id, shas)
    stored = {
        sha: size
        for sha, size in BulkDb(session).select_in(
            Blob.__tablename__, "sha256", ("sha256", "size"), shas
        )
    }
    on_disk = blobs.sizes(sorted(stored)) if stored else {}
    proven: list[str] = []
    not_proven: list[str] = []
    for sha in shas:
        ok = False
        challenge, size = live.get(sha), sizes.get(sha)
        if challenge is not None and size is not None and as_utc(challenge[1]) > now:
            nonce = bytes.fromhex(challenge[0])
            if stored.get(sha) == size and on_disk.get(sha) == size:
                right = _expected(blobs, nonce, sha, size)
                ok = right is not None and hmac.compare_digest(right, proofs[sha])
            else:
                _decoy(nonce, sha, size)
        (proven if ok else not_proven).append(sha)
    grant(session, fingerprint, proven, HOW_PROOF)
    session.commit()
    return proven, not_proven
