"""The registry's transparency log: every ledger entry and every contribution acceptance is a
leaf of one append-only RFC 6962 Merkle tree (app.tlog), served as C2SP tlog-tiles under
/v1/log/ with signed C2SP checkpoints.

Writers call ONE function in their own transaction:
- `append(session, leaves)`: append leaves, write their tiles and rows, sign and store the new
  checkpoint. Used by contribution acceptance (`acceptance_leaf`).
- `log_ledger(session)`: append a leaf for every ledger entry not logged yet (ledger ids above
  `log_state.ledger_id`, in id order). The ledger writer (the settler) calls it after inserting
  its entries, in the same transaction, while it still holds its own lock: then the ledger ids
  it sees are exactly the ones logged so far plus its own. Reads of the log call it too (see
  `catch_up`), so a ledger writer that does not call it only delays its leaves.

Appenders lock `log_state` first (an UPDATE of its one row), so leaves are appended one
transaction at a time and a rolled-back transaction leaves nothing: tiles, leaves, checkpoint
and tree size are written together.

Leaves are canonical JSON (UTF-8, keys sorted, no spaces; the values are strings, integers,
booleans and null only). See docs/protocol.md "Transparency log" for the schema.

The log key is an Ed25519 signed-note key named after the log's origin, made at the first use
and kept in `registry_meta` (`log_skey`; retired keys as `log_skey_retired_<key id>`);
`contributor-registry log-key [--rotate]` prints and rotates it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.tlog import Checkpoint, Signer, TiledLog, leaf_hash
from app.tlog.merkle import EMPTY_ROOT
from app.tlog.tiles import TILE_WIDTH, encode_bundle, tile_width
from registry.bulkdb import BulkDb
from registry.db.writegate import hold_write_gate

LEAF_VERSION = 1
KIND_LEDGER = "ledger"
KIND_ACCEPTANCE = "acceptance"

_meta = sa.MetaData()
LOG_LEAVES = sa.Table(
    "log_leaves",
    _meta,
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.String(16)),
    sa.Column("ref", sa.String(128)),
    sa.Column("leaf", sa.LargeBinary),
)
LOG_TILES = sa.Table(
    "log_tiles",
    _meta,
    sa.Column("level", sa.Integer, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("data", sa.LargeBinary),
)
LOG_CHECKPOINTS = sa.Table(
    "log_checkpoints",
    _meta,
    sa.Column("size", sa.BigInteger, primary_key=True),
    sa.Column("note", sa.LargeBinary),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
LOG_STATE = sa.Table(
    "log_state",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger),
    sa.Column("ledger_id", sa.BigInteger),
)
LEDGER_COLUMNS = (
    "id", "event_id", "kind", "contribution_id", "owner_fingerprint", "model_id", "method",
    "amount_micro", "at", "demo", "events", "digest", "seq_from", "seq_to", "share_ppm",
)  # fmt: skip
LEDGER_BATCH = 5000  # ledger rows read per step by log_ledger


@dataclass(frozen=True)
class Leaf:
    """One leaf to append: its canonical bytes and what it stands for (kind, ref): a ledger
    entry id or an accepted contribution id."""

    kind: str
    ref: str
    data: bytes


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(obj).encode()


def utc_z(value: Any) -> str:
    """A stored time as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (SQLite naive text or a datetime)."""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":  # SQLite's "YYYY-MM-DD HH:MM:SS.ffffff"
            return value[:10] + "T" + value[11:] + "Z"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def event_digest(event_id: str, model_id: str, at_z: str, fee: int, attributions: str) -> str:
    """SHA-256 of a usage event's stored fields joined by NUL (the settler's formula)."""
    data = "\x00".join((event_id, model_id, at_z, str(fee), attributions))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def usage_digest(pairs: Sequence[tuple[str, int]]) -> str:
    """What a contributor entry commits to: sha256 of its sorted "<event digest> <amount>\\n"
    lines (one line for an entry of one event)."""
    h = hashlib.sha256()
    for digest, amount in sorted(pairs):
        h.update(f"{digest} {amount}\n".encode())
    return h.hexdigest()


def ledger_leaf_obj(row: Mapping[str, Any], digest: str | None) -> dict[str, Any]:
    """The leaf of one ledger row (columns LEDGER_COLUMNS); `digest` is its usage digest."""
    contributor = row["kind"] == "contributor"
    return {
        "type": KIND_LEDGER,
        "v": LEAF_VERSION,
        "id": int(row["id"]),
        "kind": str(row["kind"]),
        "eventId": row["event_id"],
        "contributionId": row["contribution_id"],
        "owner": row["owner_fingerprint"],
        "modelId": str(row["model_id"]),
        "method": row["method"],
        "amountMicro": int(row["amount_micro"]),
        "at": utc_z(row["at"]),
        "demo": bool(row["demo"]),
        "events": int(row["events"]) if row["events"] is not None else (1 if contributor else None),
        "usageDigest": digest,
        "seqFrom": None if row["seq_from"] is None else int(row["seq_from"]),
        "seqTo": None if row["seq_to"] is None else int(row["seq_to"]),
        "sharePpm": None if row["share_ppm"] is None else int(row["share_ppm"]),
    }


_PLAIN = re.compile(r"[A-Za-z0-9 ._:/+=@~-]*")  # strings JSON writes as they are


def _js(value: str | None) -> str:
    if value is None:
        return "null"
    if _PLAIN.fullmatch(value):
        return '"' + value + '"'
    return _ENCODER.encode(value)


def _num(value: Any) -> str:
    return "null" if value is None else str(int(value))


def ledger_leaf(row: Mapping[str, Any], digest: str | None) -> bytes:
    """canonical_json(ledger_leaf_obj(row, digest)), written directly (the settlement path)."""
    events = row["events"]
    if events is None and row["kind"] == "contributor":
        events = 1
    return (
        f'{{"amountMicro":{int(row["amount_micro"])},"at":"{utc_z(row["at"])}",'
        f'"contributionId":{_js(row["contribution_id"])},'
        f'"demo":{"true" if row["demo"] else "false"},"eventId":{_js(row["event_id"])},'
        f'"events":{_num(events)},"id":{int(row["id"])},"kind":{_js(str(row["kind"]))},'
        f'"method":{_js(row["method"])},"modelId":{_js(str(row["model_id"]))},'
        f'"owner":{_js(row["owner_fingerprint"])},"seqFrom":{_num(row["seq_from"])},'
        f'"seqTo":{_num(row["seq_to"])},"sharePpm":{_num(row["share_ppm"])},'
        f'"type":"{KIND_LEDGER}","usageDigest":{_js(digest)},"v":{LEAF_VERSION}}}'
    ).encode()


def acceptance_leaf(
    contribution_id: str, owner: str, envelope_sha256: str, manifest_sha256: str, at: datetime
) -> Leaf:
    obj = {
        "type": KIND_ACCEPTANCE,
        "v": LEAF_VERSION,
        "contributionId": contribution_id,
        "owner": owner,
        "envelopeSha256": envelope_sha256,
        "manifestSha256": manifest_sha256,
        "at": utc_z(at),
    }
    return Leaf(KIND_ACCEPTANCE, contribution_id, canonical_json(obj))


def contribution_accepted(session: Session, contribution: Any) -> None:
    """Append the acceptance of `contribution` (a registry.db.models.Contribution that has just
    become accepted) in the session's transaction."""
    leaf = acceptance_leaf(
        contribution.id,
        contribution.owner_fingerprint,
        contribution.envelope_sha256,
        contribution.manifest_sha256,
        contribution.updated_at,
    )
    append(session, [leaf])


class SessionTileStorage:
    """Hash tiles in `log_tiles`, through the session's transaction; tiles written in this
    transaction are read back from memory."""

    def __init__(self, session: Session) -> None:
        self._conn = session.connection()
        self._written: dict[tuple[int, int], bytes] = {}

    def read_tile(self, level: int, index: int) -> bytes:
        data = self._written.get((level, index))
        if data is not None:
            return data
        row = self._conn.execute(
            sa.select(LOG_TILES.c.data).where(LOG_TILES.c.level == level, LOG_TILES.c.idx == index)
        ).first()
        return bytes(row[0]) if row is not None else b""

    def write_tiles(self, tiles: Mapping[tuple[int, int], bytes]) -> None:
        for (level, index), data in sorted(tiles.items()):
            done = self._conn.execute(
                sa.update(LOG_TILES)
                .where(LOG_TILES.c.level == level, LOG_TILES.c.idx == index)
                .values(data=data)
            ).rowcount
            if not done:
                self._conn.execute(sa.insert(LOG_TILES).values(level=level, idx=index, data=data))
            self._written[(level, index)] = data


# ---- identity (origin and key) ----


def _meta_get(session: Session, key: str) -> str | None:
    value = session.execute(
        sa.text("SELECT value FROM registry_meta WHERE key = :k"), {"k": key}
    ).scalar()
    return None if value is None else str(value)


def _meta_put(session: Session, key: str, value: str) -> None:
    done = (
        session.connection()
        .execute(
            sa.text("UPDATE registry_meta SET value = :v WHERE key = :k"), {"k": key, "v": value}
        )
        .rowcount
    )
    if not done:
        session.execute(
            sa.text("INSERT INTO registry_meta (key, value) VALUES (:k, :v)"),
            {"k": key, "v": value},
        )


def _lock(session: Session) -> tuple[int, int]:
    """Take the log's append lock (its state row) in the session's transaction: (size, ledger
    id logged up to)."""
    hold_write_gate(session)
    session.execute(sa.update(LOG_STATE).where(LOG_STATE.c.id == 1).values(size=LOG_STATE.c.size))
    size, ledger_id = session.execute(
        sa.select(LOG_STATE.c.size, LOG_STATE.c.ledger_id).where(LOG_STATE.c.id == 1)
    ).one()
    return int(size), int(ledger_id)


def _signer_locked(session: Session) -> Signer:
    """The log's signer, made (with the empty tree's checkpoint) if there is none yet; the
    caller holds the append lock."""
    skey = _meta_get(session, "log_skey")
    if skey is not None:
        return Signer.from_skey(skey)
    registry_id = _meta_get(session, "registry_id") or "registry"
    origin = _meta_get(session, "log_origin")
    if origin is None:
        origin = f"contributor-registry/{registry_id}"
        _meta_put(session, "log_origin", origin)
    signer = Signer.generate(origin)
    _meta_put(session, "log_skey", signer.skey)
    size = int(session.execute(sa.select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1)).scalar_one())
    if size == 0:
        _store_checkpoint(session, Checkpoint(origin, 0, EMPTY_ROOT).sign(signer), 0)
    return signer


def identity(session: Session) -> tuple[str, str]:
    """(origin, verifier key) of the log; made and committed on first use."""
    skey = _meta_get(session, "log_skey")
    if skey is None:
        _lock(session)
        signer = _signer_locked(session)
        session.commit()
    else:
        signer = Signer.from_skey(skey)
    return signer.name, signer.verifier.vkey


def rotate_key(session: Session) -> tuple[str, str]:
    """Retire the log key and make a new one of the same name (the origin); the latest
    checkpoint is signed again by both keys, so a client holding the old key can see the new
    one vouched for by it. Returns (old vkey, new vkey); the caller commits."""
    size, _ = _lock(session)
    old = _signer_locked(session)
    new = Signer.generate(old.name)
    _meta_put(session, f"log_skey_retired_{old.key_id:08x}", old.skey)
    _meta_put(session, "log_skey", new.skey)
    log = TiledLog(SessionTileStorage(session), size)
    note = Checkpoint(old.name, size, log.root()).sign(new, old)
    _store_checkpoint(session, note, size)
    return old.verifier.vkey, new.verifier.vkey


def _store_checkpoint(session: Session, note: bytes, size: int) -> None:
    now = datetime.now(UTC)
    done = (
        session.connection()
        .execute(
            sa.update(LOG_CHECKPOINTS)
            .where(LOG_CHECKPOINTS.c.size == size)
            .values(note=note, created_at=now)
        )
        .rowcount
    )
    if not done:
        session.execute(sa.insert(LOG_CHECKPOINTS).values(size=size, note=note, created_at=now))


# ---- appending ----


def _append_locked(session: Session, size: int, leaves: Sequence[Leaf]) -> int:
    signer = _signer_locked(session)
    log = TiledLog(SessionTileStorage(session), size)
    start = log.append([leaf_hash(leaf.data) for leaf in leaves])
    rows = [(start + i, leaf.kind, leaf.ref, leaf.data) for i, leaf in enumerate(leaves)]
    db = BulkDb(session)
    if db.dialect == "postgresql":
        with db.raw.cursor() as cur:
            cur.executemany(
                "INSERT INTO log_leaves (idx, kind, ref, leaf) VALUES (%s, %s, %s, %s)", rows
            )
    else:
        db.insert(LOG_LEAVES, ("idx", "kind", "ref", "leaf"), rows)
    _store_checkpoint(session, Checkpoint(signer.name, log.size, log.root()).sign(signer), log.size)
    session.execute(sa.update(LOG_STATE).where(LOG_STATE.c.id == 1).values(size=log.size))
    return start


def append(session: Session, leaves: Sequence[Leaf]) -> int:
    """Append leaves in the session's transaction (the caller commits): tiles, leaf rows and
    a newly signed checkpoint. Returns the index of the first leaf."""
    size, _ = _lock(session)
    if not leaves:
        return size
    return _append_locked(session, size, leaves)


def _usage_digests(session: Session, rows: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """The usage digest of each contributor row: the settler's stored digest, or for an entry
    of one event (written before settlement existed) computed from its event."""
    out: dict[int, str] = {}
    legacy: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["kind"] != "contributor":
            continue
        if r["digest"] is not None:
            out[int(r["id"])] = str(r["digest"])
        elif r["event_id"] is not None:
            legacy.setdefault(str(r["event_id"]), []).append(r)
    ids = list(legacy)
    for i in range(0, len(ids), 500):
        events = session.execute(
            sa.text(
                "SELECT event_id, model_id, at, fee_micro, attributions FROM usage_events "
                "WHERE event_id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": ids[i : i + 500]},
        ).all()
        for eid, model_id, at, fee, attributions in events:
            d = event_digest(eid, model_id, utc_z(at), int(fee), attributions)
            for r in legacy[eid]:
                out[int(r["id"])] = usage_digest([(d, int(r["amount_micro"]))])
    return out


def log_ledger(session: Session) -> int:
    """Append a leaf for every ledger entry not logged yet, in ledger id order, in the
    session's transaction (the caller commits). Returns how many were appended."""
    size, logged = _lock(session)
    total = 0
    cols = ", ".join(LEDGER_COLUMNS)
    db = BulkDb(session)
    sql = f"SELECT {cols} FROM ledger WHERE id > ? ORDER BY id LIMIT ?"
    while True:
        batch = db.fetch(sql, (logged, LEDGER_BATCH))
        rows = [dict(zip(LEDGER_COLUMNS, r, strict=True)) for r in batch]
        if not rows:
            break
        digests = _usage_digests(session, rows)
        leaves = [
            Leaf(
                KIND_LEDGER,
                str(r["id"]),
                ledger_leaf(r, digests.get(int(r["id"]))),
            )
            for r in rows
        ]
        _append_locked(session, size, leaves)
        size += len(leaves)
        logged = int(rows[-1]["id"])
        total += len(leaves)
    if total:
        session.execute(sa.update(LOG_STATE).where(LOG_STATE.c.id == 1).values(ledger_id=logged))
    return total


def catch_up(session: Session) -> None:
    """Log the ledger entries the ledger writer has not logged (if any) and commit: called by
    the log's read endpoints, so what they serve covers the whole ledger."""
    top = session.execute(sa.text("SELECT max(id) FROM ledger")).scalar()
    logged = session.execute(
        sa.select(LOG_STATE.c.ledger_id).where(LOG_STATE.c.id == 1)
    ).scalar_one()
    if top is not None and int(top) > int(logged):
        log_ledger(session)
        session.commit()
    else:
        session.rollback()  # end the read transaction (SQLite: release its snapshot)


# ---- reading ----


def latest_checkpoint(session: Session) -> bytes:
    identity(session)
    note = session.execute(
        sa.select(LOG_CHECKPOINTS.c.note).order_by(LOG_CHECKPOINTS.c.size.desc()).limit(1)
    ).scalar_one()
    return bytes(note)


def checkpoint_at(session: Session, size: int) -> bytes | None:
    note = session.execute(
        sa.select(LOG_CHECKPOINTS.c.note).where(LOG_CHECKPOINTS.c.size == size)
    ).scalar()
    return None if note is None else bytes(note)


def tree_size(session: Session) -> int:
    return int(session.execute(sa.select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1)).scalar_one())


def tiled_log(session: Session, size: int) -> TiledLog:
    return TiledLog(SessionTileStorage(session), size)


def hash_tile(session: Session, size: int, level: int, index: int, width: int) -> bytes | None:
    """The first `width` hashes of a tile, if the tree of `size` has them."""
    if width > tile_width(size, level, index):
        return None
    data = SessionTileStorage(session).read_tile(level, index)
    if len(data) < width * 32:
        return None
    return data[: width * 32]


def entry_bundle(session: Session, size: int, index: int, width: int) -> bytes | None:
    if width > tile_width(size, 0, index):
        return None
    lo = index * TILE_WIDTH
    rows = session.execute(
        sa.select(LOG_LEAVES.c.leaf)
        .where(LOG_LEAVES.c.idx >= lo, LOG_LEAVES.c.idx < lo + width)
        .order_by(LOG_LEAVES.c.idx)
    ).all()
    if len(rows) != width:
        return None
    return encode_bundle(bytes(r[0]) for r in rows)


def leaf_of(session: Session, kind: str, refs: Sequence[str]) -> dict[str, tuple[int, bytes]]:
    """ref → (leaf index, leaf bytes) of the logged ones among `refs`."""
    out: dict[str, tuple[int, bytes]] = {}
    for i in range(0, len(refs), 500):
        for idx, ref, leaf in session.execute(
            sa.select(LOG_LEAVES.c.idx, LOG_LEAVES.c.ref, LOG_LEAVES.c.leaf).where(
                LOG_LEAVES.c.kind == kind, LOG_LEAVES.c.ref.in_(list(refs[i : i + 500]))
            )
        ):
            out[str(ref)] = (int(idx), bytes(leaf))
    return out
