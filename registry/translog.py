"""The registry's transparency log: every ledger entry and every contribution acceptance is a
leaf of one append-only RFC 6962 Merkle tree (app.tlog), served as C2SP tlog-tiles under
/v1/log/ with signed C2SP checkpoints.

Writers call ONE function in their own transaction:
- `append(session, leaves)`: append leaves, write their tiles and rows, sign and store the new
  checkpoint. Used by contribution acceptance (`acceptance_leaf`).
- `log_entries(session, rows)`: the settler's path. It passes the ledger rows it has just
  inserted, in the same transaction, while it still holds its own lock: the leaves are made
  from those tuples (only their new ids are read back), and if the ledger holds other unlogged
  rows it falls back to `log_ledger`.
- `log_ledger(session)`: append a leaf for every ledger entry not logged yet (ledger ids above
  `log_state.ledger_id`, in id order), read back from the ledger. Reads of the log call it too
  (see `catch_up`), so a ledger writer that does not log only delays its leaves.

Storage: hash tiles in `log_tiles`; every leaf's bytes in `log_bundles`, as tlog-tiles entry
bundles of 256 leaves (the right-edge bundle grows in place, like the tiles); what a leaf
stands for in `log_leaves` (kind, ref, and its bytes again) for acceptances and entries logged
by `log_ledger`, or, for the settler's entries, one `log_ranges` row per run of consecutive
ledger ids (leaf idx + k is ledger entry ledger_id + k). Leaf bytes are stored, not rendered
again on read: a ledger row changed behind the registry's back must not change what the log
serves as its leaf.

Appenders lock `log_state` first (an UPDATE of its one row), so leaves are appended one
transaction at a time and a rolled-back transaction leaves nothing: tiles, leaves, checkpoint
and tree size are written together. An appender keeps the log's right edge (the partial tile
of each level, the partial bundle) in memory for its next append, and uses it only while the
database holds the checkpoint it signed at that size (`_Edge`); otherwise it reads them.

Leaves are canonical JSON (UTF-8, keys sorted, no spaces; the values are strings, integers,
booleans and null only). See docs/protocol.md "Transparency log" for the schema.

The log key is an Ed25519 signed-note key named after the log's origin, made at the first use
and kept in `registry_meta` (`log_skey`; retired keys as `log_skey_retired_<key id>`);
`contributor-registry log-key [--rotate]` prints and rotates it.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import re
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.tlog import Checkpoint, Signer, TiledLog
from app.tlog.errors import TlogError
from app.tlog.merkle import EMPTY_ROOT, HASH_SIZE
from app.tlog.tiles import (
    MAX_ENTRY_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileCache,
    TileStorage,
    decode_bundle,
    tile_width,
)
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
LOG_BUNDLES = sa.Table(
    "log_bundles",
    _meta,
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("data", sa.LargeBinary),
)
LOG_RANGES = sa.Table(
    "log_ranges",
    _meta,
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("ledger_id", sa.BigInteger),
    sa.Column("count", sa.Integer),
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
SETTLED_COLUMNS = LEDGER_COLUMNS[1:]  # a row as the settler inserts it (the id comes later)
LEDGER_BATCH = 5000  # ledger rows read per step by log_ledger
TILE_ROWS = 200  # tiles per upsert statement (3 parameters each)
BUNDLE_ROWS = 50  # entry bundles (up to ~120 KB each) per upsert statement
EDGE_FULL_TILES = 32  # full tiles whose inner levels the right edge keeps (the root's need)


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
    when: datetime = value.astimezone(UTC) if value.utcoffset() else value
    # isoformat (C) instead of strftime: a few times cheaper, the same text for years >= 1000
    return when.replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


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


class _LedgerLeafStruct(msgspec.Struct, gc=False):
    """A ledger leaf for msgspec's encoder: the fields in the canonical JSON's key order
    (sorted), so encoding one is canonical_json(ledger_leaf_obj(...)), byte for byte, when
    every value has the field's type (tests/registry/test_translog_render.py)."""

    amountMicro: int
    at: str
    contributionId: str | None
    demo: bool
    eventId: str | None
    events: int | None
    id: int
    kind: str
    method: str | None
    modelId: str
    owner: str | None
    seqFrom: int | None
    seqTo: int | None
    sharePpm: int | None
    type: str
    usageDigest: str | None
    v: int


_MS_ENCODE = msgspec.json.Encoder().encode
_MS_DECODE = msgspec.json.Decoder(list[str]).decode


def _times_z(values: Sequence[Any]) -> list[str]:
    """utc_z of each value, for a batch: datetimes through msgspec's encoder in one call (it
    writes a zero UTC offset as "Z"; its text is taken when it is utc_z's form, with the
    microseconds, else utc_z decides), SQLite's text by slicing."""
    try:
        texts = _MS_DECODE(_MS_ENCODE(values))
    except (TypeError, UnicodeEncodeError, msgspec.DecodeError):
        texts = [""] * len(values)
    return [
        (v.replace(" ", "T", 1) + "Z" if len(v) == 26 and v[10] == " " else utc_z(v))
        if type(v) is str
        else (t if len(t) == 27 and t[26] == "Z" and t[19] == "." else utc_z(v))
        for v, t in zip(values, texts, strict=True)
    ]


def _render_settled(ids: Sequence[int], rows: Sequence[Sequence[Any]]) -> list[bytes]:
    """ledger_leaf of each row tuple (SETTLED_COLUMNS order) with its id, byte-identical: the
    settler's path, through msgspec. The settler's values have the leaf's types already (str
    or None, int or None; `demo` any truth value, `at` SQLite text or a datetime); a batch
    with a value msgspec cannot write as the reference does (an int beyond 64 bits, a string
    that is not UTF-8-encodable, a value of another type) is rendered by ledger_leaf."""
    enc = _MS_ENCODE
    make = _LedgerLeafStruct
    kind_ledger, v = KIND_LEDGER, LEAF_VERSION
    try:
        out = [
            enc(
                make(
                    int(amount),
                    at_z,
                    cid,
                    True if demo else False,
                    event_id,
                    (1 if events is None and kind == "contributor" else events),
                    entry_id,
                    kind,
                    method,
                    model_id,
                    owner,
                    seq_from,
                    seq_to,
                    share,
                    kind_ledger,
                    digest if kind == "contributor" else None,
                    v,
                )
            )
            for entry_id, at_z, (event_id, kind, cid, owner, model_id, method, amount, _at, demo,
                                 events, digest, seq_from, seq_to, share)
            in zip(ids, _times_z([r[7] for r in rows]), rows, strict=True)
        ]  # fmt: skip
    except (OverflowError, TypeError, UnicodeEncodeError):
        pass
    else:
        return out
    return [
        ledger_leaf(
            dict(zip(LEDGER_COLUMNS, (entry_id, *row), strict=True)),
            row[10] if row[1] == "contributor" else None,
        )
        for entry_id, row in zip(ids, rows, strict=True)
    ]


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
        """One upsert statement for all of them (a settlement changes dozens of tiles)."""
        rows = sorted(tiles.items())
        if not rows:
            return
        mark = "%s" if self._conn.dialect.name == "postgresql" else "?"
        one = f"({mark}, {mark}, {mark})"
        for i in range(0, len(rows), TILE_ROWS):
            part = rows[i : i + TILE_ROWS]
            cur = self._conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute(
                    "INSERT INTO log_tiles (level, idx, data) VALUES "
                    + ", ".join([one] * len(part))
                    + " ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data",
                    [v for (level, index), data in part for v in (level, index, data)],
                )
            finally:
                cur.close()
        self._written.update(tiles)


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


@functools.lru_cache(maxsize=8)
def _signer(skey: str) -> Signer:
    """The signer of a stored key (kept: its key is read again by every append)."""
    return Signer.from_skey(skey)


def _signer_locked(session: Session) -> Signer:
    """The log's signer, made (with the empty tree's checkpoint) if there is none yet; the
    caller holds the append lock."""
    skey = _meta_get(session, "log_skey")
    if skey is not None:
        return _signer(skey)
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
    """Store the checkpoint of `size` (replacing one stored at that size): one statement."""
    name = session.get_bind().dialect.name
    insert = sqlite_insert if name == "sqlite" else pg_insert
    stmt = insert(LOG_CHECKPOINTS).values(size=size, note=note, created_at=datetime.now(UTC))
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[LOG_CHECKPOINTS.c.size],
            set_={"note": stmt.excluded.note, "created_at": stmt.excluded.created_at},
        )
    )


# ---- appending ----


@dataclass
class _Edge:
    """The log's right edge as this process last appended it: its size, the checkpoint it
    signed for that size, the partial hash tile of each level, the partial entry bundle, and
    the inner levels of tiles it computed (they never change for a given tile width).

    It stands for the stored log only while the database holds that same checkpoint at that
    same size (`_lock_edge`): the checkpoint commits to the root, so to every leaf hash, tile
    and bundle entry; another writer's append, a rolled-back transaction, a log restored or
    truncated behind the registry's back all show as another size or another checkpoint, and
    the edge is then read from the database again."""

    size: int
    note: bytes
    tiles: dict[tuple[int, int], bytes]
    bundle: bytes
    cache: TileCache = field(default_factory=OrderedDict)


_EDGES: weakref.WeakKeyDictionary[sa.Engine, _Edge] = weakref.WeakKeyDictionary()


def _engine(session: Session) -> sa.Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, sa.Engine) else bind.engine


def _lock_edge(session: Session) -> tuple[int, int, _Edge | None]:
    """`_lock`, and this process's right edge of the log if it is still the stored one."""
    hold_write_gate(session)
    session.execute(sa.update(LOG_STATE).where(LOG_STATE.c.id == 1).values(size=LOG_STATE.c.size))
    size, ledger_id, note = session.execute(
        sa.select(LOG_STATE.c.size, LOG_STATE.c.ledger_id, LOG_CHECKPOINTS.c.note)
        .select_from(
            LOG_STATE.outerjoin(LOG_CHECKPOINTS, LOG_CHECKPOINTS.c.size == LOG_STATE.c.size)
        )
        .where(LOG_STATE.c.id == 1)
    ).one()
    edge = _EDGES.get(_engine(session))
    if edge is not None and (edge.size != int(size) or note is None or edge.note != bytes(note)):
        edge = None
    return int(size), int(ledger_id), edge


class _EdgeTileStorage(SessionTileStorage):
    """Tiles of the session's transaction that start from a known right edge: its partial
    tiles are read from memory instead of the database."""

    def __init__(self, session: Session, edge: _Edge | None) -> None:
        super().__init__(session)
        self._known = {} if edge is None else edge.tiles

    def read_tile(self, level: int, index: int) -> bytes:
        data = self._written.get((level, index)) or self._known.get((level, index))
        return data if data is not None else super().read_tile(level, index)


def _partial_tiles(storage: TileStorage, size: int) -> dict[tuple[int, int], bytes]:
    """The partial hash tile of each level of a tree of `size` (its first `width` hashes)."""
    out = {}
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        width = count & (TILE_WIDTH - 1)
        if width:
            index = count >> TILE_HEIGHT
            data = storage.read_tile(level, index)
            if len(data) < width * HASH_SIZE:
                raise TlogError(f"tile {level}/{index} is behind the tree size {size}")
            out[(level, index)] = data[: width * HASH_SIZE]
        level += 1
    return out


def _append_locked(
    session: Session, size: int, leaves: Sequence[Leaf], edge: _Edge | None
) -> _Edge:
    return _append_rows(
        session,
        size,
        [leaf.data for leaf in leaves],
        [(leaf.kind, leaf.ref) for leaf in leaves],
        edge,
    )


def _append_rows(
    session: Session,
    size: int,
    datas: Sequence[bytes],
    names: Sequence[tuple[str, str]] | None,
    edge: _Edge | None,
    *,
    ledger_id: int | None = None,
) -> _Edge:
    """Append leaves (their bytes) in the session's transaction, the lock held: hash tiles,
    entry bundles, a signed checkpoint, the new size (and `ledger_id` logged up to, if given),
    and, with `names`, a `log_leaves` row per leaf naming what it stands for, (kind, ref)
    (the caller records it otherwise: `log_ranges`). `edge` is the log's right edge at `size`
    if known (else it is read from the database). Returns the new right edge, which this
    process keeps for its next append."""
    signer = _signer_locked(session)
    storage = _EdgeTileStorage(session, edge)
    log = TiledLog(storage, size)
    if edge is not None:
        log._cache = edge.cache  # the tiles' inner levels computed by earlier appends
    sha = hashlib.sha256
    start = log.append([sha(b"\x00" + data).digest() for data in datas])
    db = BulkDb(session)
    bundle = _write_bundles(db, start, datas, None if edge is None else edge.bundle)
    if names is not None:
        _insert_leaves(
            db,
            [(start + i, k, r, d) for i, ((k, r), d) in enumerate(zip(names, datas, strict=True))],
        )
    note = Checkpoint(signer.name, log.size, log.root()).sign(signer)
    _store_checkpoint(session, note, log.size)
    state = {"size": log.size} if ledger_id is None else {"size": log.size, "ledger_id": ledger_id}
    session.execute(sa.update(LOG_STATE).where(LOG_STATE.c.id == 1).values(**state))
    # only full tiles' levels are met again (a partial tile is read at a new width next time)
    full = [(k, v) for k, v in log._cache.items() if k[2] == TILE_WIDTH][-EDGE_FULL_TILES:]
    new = _Edge(log.size, note, _partial_tiles(storage, log.size), bundle, OrderedDict(full))
    _EDGES[_engine(session)] = new
    return new


def _bundle_head(stored: bytes, count: int) -> bytes | None:
    """The bytes of the first `count` entries of a stored bundle (None if it has fewer)."""
    pos = 0
    for _ in range(count):
        if pos + 2 > len(stored):
            return None
        pos += 2 + int.from_bytes(stored[pos : pos + 2], "big")
    return stored[:pos] if pos <= len(stored) else None


def _read_bundles(db: BulkDb, indexes: Sequence[int]) -> dict[int, bytes]:
    wanted = sorted(set(indexes))
    out: dict[int, bytes] = {}
    for i in range(0, len(wanted), 100):
        part = wanted[i : i + 100]
        marks = ", ".join("?" * len(part))
        for idx, data in db.fetch(
            f"SELECT idx, data FROM log_bundles WHERE idx IN ({marks})", part
        ):
            out[int(idx)] = bytes(data)
    return out


def _write_bundles(
    db: BulkDb, start: int, datas: Sequence[bytes], known: bytes | None = None
) -> bytes:
    """Add leaves start.. to the entry bundles: the partial bundle at the right edge grows (its
    head is `known`, the partial bundle at `start`, or read), full ones are written once.
    Returns the partial bundle at the new right edge (b"" if there is none)."""
    first, offset = divmod(start, TILE_WIDTH)
    head = b""
    if offset:
        stored = known if known is not None else _read_bundles(db, [first]).get(first, b"")
        found = _bundle_head(stored, offset)
        if found is None:
            raise TlogError(f"entry bundle {first} is behind the tree size {start}")
        head = found
    if datas and max(map(len, datas)) > MAX_ENTRY_BYTES:
        raise TlogError(f"a leaf of {max(map(len, datas))} bytes, more than {MAX_ENTRY_BYTES}")
    # each entry framed by its 2-byte length (the few distinct lengths made once)
    prefix = {n: n.to_bytes(2, "big") for n in set(map(len, datas))}
    framed: list[bytes] = [b""] * (2 * len(datas))
    framed[0::2] = map(prefix.__getitem__, map(len, datas))
    framed[1::2] = datas
    bundles: list[tuple[int, bytes]] = []
    index, n = first, offset
    pos = 0
    while pos < len(datas):
        take = min(TILE_WIDTH - n, len(datas) - pos)
        data = b"".join(framed[2 * pos : 2 * (pos + take)])
        bundles.append((index, head + data if n else data))
        pos += take
        index, n, head = index + 1, 0, b""
    if not bundles:
        return head
    if db.dialect == "postgresql":
        # rows from this bundle on replaced: one DELETE (nothing but the right-edge bundle, if
        # any) and a binary COPY, cheaper for ~100 KB values than bound INSERT parameters
        db.fetch("DELETE FROM log_bundles WHERE idx >= %s", (first,))
        with (
            db.raw.cursor() as cur,
            cur.copy("COPY log_bundles (idx, data) FROM STDIN (FORMAT BINARY)") as cp,
        ):
            cp.set_types(["int8", "bytea"])
            for row in bundles:
                cp.write_row(row)
    else:
        for i in range(0, len(bundles), BUNDLE_ROWS):
            part = bundles[i : i + BUNDLE_ROWS]
            db.fetch(
                "INSERT INTO log_bundles (idx, data) VALUES "
                + ", ".join(["(?, ?)"] * len(part))
                + " ON CONFLICT (idx) DO UPDATE SET data = excluded.data",
                [v for row in part for v in row],
            )
    _, last = bundles[-1]
    return b"" if (start + len(datas)) % TILE_WIDTH == 0 else last


def _insert_leaves(db: BulkDb, rows: list[tuple[int, str, str, bytes]]) -> None:
    """Leaf rows (idx, kind, ref, leaf): binary COPY on PostgreSQL (an executemany costs a
    round trip of parameter handling per row), multi-row VALUES on SQLite."""
    if db.dialect == "postgresql":
        with (
            db.raw.cursor() as cur,
            cur.copy("COPY log_leaves (idx, kind, ref, leaf) FROM STDIN (FORMAT BINARY)") as cp,
        ):
            cp.set_types(["int8", "text", "text", "bytea"])
            for row in rows:
                cp.write_row(row)
    else:
        db.insert(LOG_LEAVES, ("idx", "kind", "ref", "leaf"), rows)


def append(session: Session, leaves: Sequence[Leaf]) -> int:
    """Append leaves in the session's transaction (the caller commits): tiles, leaf rows and
    a newly signed checkpoint. Returns the index of the first leaf."""
    size, _, edge = _lock_edge(session)
    if not leaves:
        return size
    _append_locked(session, size, leaves, edge)
    return size


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
    size, logged, edge = _lock_edge(session)
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
        edge = _append_locked(session, size, leaves, edge)
        size += len(leaves)
        logged = int(rows[-1]["id"])
        total += len(leaves)
    if total:
        session.execute(sa.update(LOG_STATE).where(LOG_STATE.c.id == 1).values(ledger_id=logged))
    return total


def log_entries(session: Session, rows: Sequence[Sequence[Any]]) -> int:
    """Append a leaf for each of `rows`: the ledger rows this transaction has just inserted
    (tuples in SETTLED_COLUMNS order, in insertion order, so in id order), in the session's
    transaction (the caller commits). The leaves are made from these tuples, not read back;
    only the new ids are read. If the ledger holds other unlogged rows too (a writer that
    did not log its own), it logs them all through `log_ledger`. Returns leaves appended.

    A contributor row's usage digest is its `digest` column (the settler always writes one)."""
    size, logged, edge = _lock_edge(session)
    if not rows:
        return 0
    db = BulkDb(session)
    # The new ids: the first and the last unlogged one (two index lookups). When they span
    # exactly len(rows) ids, the unlogged rows are these rows (they are unlogged, distinct
    # ids, and fill the span), in id order; otherwise (a sequence may skip values, or another
    # writer left rows unlogged) the ids are read, and counted.
    ((lo, hi),) = db.fetch(
        "SELECT (SELECT min(id) FROM ledger WHERE id > ?), "
        "(SELECT max(id) FROM ledger WHERE id > ?)",
        (logged, logged),
    )
    if lo is None or None in [r[10] for r in rows if r[1] == "contributor"]:
        return log_ledger(session)
    consecutive = int(hi) - int(lo) + 1 == len(rows)
    ids: Sequence[int] = range(int(lo), int(hi) + 1)
    if not consecutive:
        ids = [
            int(r[0]) for r in db.fetch("SELECT id FROM ledger WHERE id > ? ORDER BY id", (logged,))
        ]
        if len(ids) != len(rows):
            return log_ledger(session)
    start = size
    _append_rows(session, size, _render_settled(ids, rows), None, edge, ledger_id=ids[-1])
    # one range per run of consecutive ids (a settlement's ids are one run)
    ranges: list[tuple[int, int, int]] = [(start, int(lo), len(rows))] if consecutive else []
    for n, entry_id in enumerate([] if consecutive else ids):
        if ranges and entry_id == ranges[-1][1] + ranges[-1][2]:
            idx, first, count = ranges[-1]
            ranges[-1] = (idx, first, count + 1)
        else:
            ranges.append((start + n, entry_id, 1))
    db.insert(LOG_RANGES, ("idx", "ledger_id", "count"), ranges)
    return len(rows)


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
    stored = _read_bundles(BulkDb(session), [index]).get(index)
    return None if stored is None else _bundle_head(stored, width)


def _ranged(db: BulkDb, ids: Sequence[int]) -> dict[int, int]:
    """ledger id → leaf index, for the ids in `log_ranges`."""
    if not ids:
        return {}
    lo, hi = min(ids), max(ids)
    rows = db.fetch(
        "SELECT idx, ledger_id, count FROM log_ranges WHERE ledger_id <= ? AND ledger_id >= "
        "(SELECT coalesce(max(ledger_id), 0) FROM log_ranges WHERE ledger_id <= ?) "
        "ORDER BY ledger_id",
        (hi, lo),
    )
    firsts = [int(r[1]) for r in rows]
    out = {}
    for entry_id in ids:
        k = bisect.bisect_right(firsts, entry_id) - 1
        if k >= 0:
            idx, first, count = (int(v) for v in rows[k])
            if entry_id < first + count:
                out[entry_id] = idx + entry_id - first
    return out


def _leaves_at(db: BulkDb, indexes: Sequence[int]) -> dict[int, bytes]:
    """leaf index → leaf bytes, from the entry bundles."""
    bundles = _read_bundles(db, [i // TILE_WIDTH for i in indexes])
    decoded = {n: decode_bundle(data) for n, data in bundles.items()}
    out = {}
    for i in indexes:
        entries = decoded.get(i // TILE_WIDTH, [])
        if i % TILE_WIDTH < len(entries):
            out[i] = entries[i % TILE_WIDTH]
    return out


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
    if kind != KIND_LEDGER:
        return out
    ids = [
        int(r) for r in refs if r not in out and r.isascii() and r.isdigit() and r == str(int(r))
    ]
    db = BulkDb(session)
    where = _ranged(db, ids)
    leaves = _leaves_at(db, list(where.values()))
    for entry_id, idx in where.items():
        if idx in leaves:
            out[str(entry_id)] = (idx, leaves[idx])
    return out


def all_leaves(session: Session) -> list[Leaf]:
    """Every leaf of the log in order, with what it stands for (for tools and tests)."""
    size = tree_size(session)
    db = BulkDb(session)
    names: dict[int, tuple[str, str]] = {
        int(idx): (str(kind), str(ref))
        for idx, kind, ref in db.fetch(
            "SELECT idx, kind, ref FROM log_leaves WHERE idx < ?", (size,)
        )
    }
    for idx, first, count in db.fetch("SELECT idx, ledger_id, count FROM log_ranges"):
        for k in range(int(count)):
            names.setdefault(int(idx) + k, (KIND_LEDGER, str(int(first) + k)))
    data = _leaves_at(db, list(range(size)))
    return [Leaf(*names[i], data[i]) for i in range(size)]
