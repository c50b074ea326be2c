"""One rewards sync verified against the registry's log: the checkpoint first
(app.services.transparency.checkpoints), then every ledger entry of the user it reports
(inclusion proof, and a leaf that says exactly what was reported), then the figures it reports
besides the entries (app.services.transparency.figures)."""

from __future__ import annotations

import binascii
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, NoReturn

import msgspec
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.errors import RegistryUnavailable
from app.registry_client.api import RegistryClient
from app.registry_client.http import ApiRefused, parse_json_object
from app.registry_client.usage import RewardEntry, UsageWindow
from app.services.context import ServiceContext
from app.services.transparency.acceptance import (
    verify_acceptances,
)
from app.services.transparency.checkpoints import advance_checkpoint
from app.services.transparency.failures import b64, hashes, record_failure, unb64
from app.services.transparency.figures import (
    CatchUp,
    StoredDays,
    check_summary,
    check_usage,
    settlement_of,
)
from app.services.transparency.leaves import (
    at_log_text,
    checked_leaf,
    checked_leaves,
    record_fields,
)
from app.services.transparency.pins import pinned
from app.services.transparency.session import UsageDays
from app.store.json_rows import as_text, encode, insert_json
from app.store.rewards_models import RewardRecord, SyncCursor
from app.store.rollups import LedgerRollupTotal
from app.store.tlog_models import LogProof, LogTile, ledger_proofs, upsert_tiles
from app.tlog import Checkpoint, InclusionBatch, MalformedError, TlogError, Verifier, leaf_hash
from app.tlog.merkle import HASH_SIZE
from app.tlog.tiles import TILE_WIDTH, tile_path, tile_width
from app.tlog.tileset import TileSet

PROOF_BATCH = 1000
LEAF_BATCH = 10_000  # entry ids per POST /v1/log/leaves
TILE_WORKERS = 4  # tile requests in flight
STORE_CHUNK = 5000  # rows per executemany call when storing proofs
# SyncCursor stream: the copy's entry count and sum when the registry's summary last matched.
STREAM_SUMMARY_CHECKED = "log:summary"
SUMMARY_RECHECK = timedelta(days=1)  # the summary is read at least this often
# A level-0 tile (8 KB, plus its share of the tiles above) is fetched only for at least this
# many of the user's new leaves; fewer are proven by inclusion proofs (~0.7 KB each).
SPARSE_BELOW = 8
_INSERT_PROOF = (
    "INSERT INTO log_proofs (scope, cursor, leaf_index, tree_size, leaf, proof) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# The same in one statement per call (app.store.json_rows), for leaves and proofs that are
# UTF-8 text (others: the statement above); and the leaves' events counts.
_INSERT_PROOFS_JSON = insert_json(
    "log_proofs",
    ("scope", "cursor", "leaf_index", "tree_size", "leaf", "proof"),
    1,
    "ON CONFLICT DO NOTHING",
    blobs=("leaf", "proof"),
)
_INSERT_EVENTS_JSON = insert_json(
    "log_leaf_events",
    ("scope", "contribution_id", "day", "model_id", "method", "cursor", "settlement", "events"),
    1,
    "ON CONFLICT DO NOTHING",
)  # fmt: skip


@contextmanager
def read_ahead(workers: int) -> Iterator[ThreadPoolExecutor]:
    """Workers for a sync's reads ahead of what it checks and stores; on the way out (also on
    an error) reads not started are dropped and those under way waited for."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="sync-read-ahead")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def write_behind() -> Iterator[ThreadPoolExecutor]:
    """One writer for a sync's stores behind its checks, in the order they are handed to it;
    on the way out (also on an error) every store handed to it is done: what was checked is
    kept."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="sync-writer")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


TileNeed = tuple[int, int, int]  # a tile as read: level, index, width


Leaf = tuple[str, int, bytes]  # a leaves answer's entry id, leaf index and leaf


class LeavesAhead(NamedTuple):
    """A leaves answer read ahead: for entries `ids` at tree size `size`, its leaves (as
    `parse_leaves` gives them) or why it could not be used (the refusal it got, or what is
    wrong with it), and the level-0 tiles it needs, as served or (`built`) made of its own
    leaves (not verified yet)."""

    ids: list[str]
    size: int
    answer: list[Leaf] | Exception
    tiles: dict[TileNeed, bytes] = {}
    built: frozenset[TileNeed] = frozenset()


class _LoggedLeaf(msgspec.Struct, forbid_unknown_fields=True):
    entryId: str
    leafIndex: int
    leaf: bytes  # base64 in the answer


class _LoggedLeaves(msgspec.Struct, forbid_unknown_fields=True):
    """The usual leaves answer (the registry's `LoggedLeaves`), nothing else."""

    leaves: list[_LoggedLeaf]
    treeSize: int | None = None
    checkpoint: str | None = None
    missing: list[str] = []


_DECODE_LEAVES = msgspec.json.Decoder(_LoggedLeaves)


def parse_leaves(resp: requests.Response, asked: set[str], size: int) -> list[Leaf]:
    """A leaves answer (POST /v1/log/leaves) as (entry id, leaf index, leaf), checked: each
    leaf of an entry asked, at an index in a tree of `size` leaves, base64. The usual answer
    is decoded in one step, in its own shape only (a few times less CPU than a generic JSON
    parse and a loop: a first sync reads hundreds of thousands of leaves); any other goes
    through the bounded JSON parser and the check that says what is wrong with it."""
    try:
        answer = _DECODE_LEAVES.decode(resp.content)
    except msgspec.DecodeError:
        answer = None
    if answer is not None:
        leaves = [(p.entryId, p.leafIndex, p.leaf) for p in answer.leaves]
        if all(e in asked and 0 <= i < size for e, i, _leaf in leaves):
            return leaves
    return _checked_leaves(parse_json_object(resp), asked, size)


def _checked_leaves(body: dict[str, Any], asked: set[str], size: int) -> list[Leaf]:
    listed = body.get("leaves")
    if not isinstance(listed, list):
        raise MalformedError("the leaves answer has no list of leaves")
    a2b = binascii.a2b_base64
    out: list[Leaf] = []
    for p in listed:
        if not isinstance(p, dict) or p.get("entryId") not in asked:
            raise MalformedError("a leaf for an entry that was not asked")
        idx = p.get("leafIndex")
        if not isinstance(idx, int) or not 0 <= idx < size:
            raise MalformedError(f"leafIndex {str(idx)[:20]} is not in the tree")
        leaf = p.get("leaf")
        if not isinstance(leaf, str):
            raise MalformedError("leaf is not a base64 string")
        try:  # unb64 inline (a2b_base64 takes ASCII text as it is)
            out.append((str(p["entryId"]), idx, a2b(leaf, strict_mode=True)))
        except ValueError:
            raise MalformedError("leaf is not base64") from None
    return out


class ProvenLeaf(NamedTuple):
    """A verified inclusion proof of one of the sync's own entries, not stored yet (a row of
    `LogProof` in the sync's scope)."""

    cursor: str
    leaf_index: int
    tree_size: int
    leaf: bytes
    proof: bytes  # concatenated 32-byte hashes
    # (contribution id, day, model id, method, settlement, events of the leaf): its
    # LogLeafEvents row (None: the leaf names no events count)
    cell: tuple[str, str, str, str, int, int] | None = None


def leaf_cell(
    fields: dict[str, Any], events: int | None, settlement: int | None = None
) -> tuple[str, str, str, str, int, int] | None:
    """The `LogLeafEvents` row of a verified leaf of the entry with these fields, the leaf
    naming `events`: (contribution id, day, model id, method, settlement, events); None when
    the leaf names no events count. `settlement`: settlement_of its event id, when known."""
    if events is None:
        return None
    if settlement is None:
        settlement = settlement_of(fields["eventId"])
    return (fields["contributionId"], fields["at"][:10], fields["modelId"], fields["method"],
            settlement, events)  # fmt: skip


def _settlements(fields: Sequence[dict[str, Any]]) -> list[int]:
    """settlement_of each entry's event id, once per distinct id (a settlement's entries
    share one)."""
    ids = [f["eventId"] for f in fields]
    of = {e: settlement_of(e) for e in set(ids)}
    return [of[e] for e in ids]


@dataclass
class LogSync:
    """Verification of one rewards sync against the registry's log (see the module doc)."""

    ctx: ServiceContext
    client: RegistryClient
    registry_key: str
    owner: str
    scope: int  # their LedgerScope id
    verifier: Verifier
    checkpoint: Checkpoint | None = None
    note: bytes = b""
    pending: int = 0
    verified: int = 0
    settled_floor: int | None = None  # see figures.stored_floor
    usage_days: UsageDays | None = None  # see expect_usage
    pending_acceptances: int = 0
    tiles: TileSet | None = None  # the tiles verified against `checkpoint` so far

    @classmethod
    def start(
        cls, ctx: ServiceContext, client: RegistryClient, registry_key: str, owner: str, scope: int
    ) -> LogSync | None:
        """Begin verification if the registry (its key: a pinned log key) serves a log:
        fetch and check its checkpoint, store it. None for a registry without a log.
        `scope`: the ledger scope of `registry_key` and `owner` (the caller's sync made it)."""
        try:
            verifier = Verifier.from_vkey(registry_key)
        except MalformedError:
            return None
        pin = pinned(ctx, verifier.name)
        if pin is None or pin.vkey != registry_key:
            return None
        sync = cls(ctx, client, registry_key, owner, scope, verifier)
        sync.begin()
        return sync

    def fail(self, what: str, message: str, evidence: dict[str, Any]) -> NoReturn:
        record_failure(self.ctx, self.registry_key, what, message, evidence)

    def begin(self) -> None:
        self.checkpoint, self.note = advance_checkpoint(
            self.ctx, self.client, self.registry_key, self.verifier, self.fail
        )

    def verify(
        self, items: Sequence[RewardEntry], leaves: LeavesAhead | None = None
    ) -> list[ProvenLeaf]:
        """Inclusion proofs of the reported entries, verified (not stored yet); entries the
        log does not hold yet stay pending. A wrong entry or proof fails the sync. `leaves`:
        the leaves answer for them read ahead (`read_leaves`), checked here as if read now."""
        # entry_fields of each entry, built in place (the same keys in the same order)
        fields = {
            e.cursor: {
                "type": "ledger", "kind": "contributor", "id": int(e.cursor),
                "eventId": e.event_id, "contributionId": e.contribution_id,
                "modelId": e.model_id, "method": e.method, "amountMicro": e.amount_micro,
                "at": at_log_text(e), "demo": e.demo,
            }
            for e in items
        }  # fmt: skip
        return self._prove(fields, leaves)

    def read_leaves(self, cursors: Sequence[str]) -> LeavesAhead | None:
        """The leaves answer for the first `LEAF_BATCH` of these entries at the checkpoint's
        size, or the refusal it got: only a read (a worker runs it), used by `verify`."""
        cp = self.checkpoint
        if cp is None or not cp.size:
            return None
        ids = list(cursors[:LEAF_BATCH])
        try:
            leaves = self._read_leaves(ids, cp.size)
        except (ApiRefused, MalformedError, RegistryUnavailable) as exc:
            return LeavesAhead(ids, cp.size, exc)  # raised when they are checked
        tiles, built = self._read_tiles_ahead(leaves, cp.size)
        return LeavesAhead(ids, cp.size, leaves, tiles, built)

    def _read_tiles_ahead(
        self, leaves: list[Leaf], size: int
    ) -> tuple[dict[TileNeed, bytes], frozenset[TileNeed]]:
        """The level-0 tiles these leaves will need (those holding at least `SPARSE_BELOW`
        of them, not held yet), and which of them were made here: a tile whose every leaf is
        among these is the hashes of those leaves, and is not read (a contributor whose
        entries fill whole tiles reads only the tiles above them). The others are read as
        served. `ensure` verifies both alike when the leaves are checked."""
        per_tile = Counter(idx // TILE_WIDTH for _e, idx, _leaf in leaves)
        held = self.tiles.tiles if self.tiles is not None else {}
        need = [
            (0, t, tile_width(size, 0, t))
            for t, n in sorted(per_tile.items())
            if n >= SPARSE_BELOW and (0, t) not in held
        ]
        own = {idx: leaf for _e, idx, leaf in leaves}
        made: dict[TileNeed, bytes] = {}
        for tile in need:
            _level, index, width = tile
            first = index * TILE_WIDTH
            if per_tile[index] == width and all(i in own for i in range(first, first + width)):
                made[tile] = b"".join(leaf_hash(own[i]) for i in range(first, first + width))
        try:
            served = self._fetch_tiles([t for t in need if t not in made])
        except ApiRefused:
            served = {}  # read again, and refused again, when they are needed
        return {**served, **made}, frozenset(made)

    def _read_leaves(self, ids: list[str], size: int) -> list[Leaf]:
        resp = self.client.http.request(
            "POST", "/v1/log/leaves", auth=False, json={"entryIds": ids, "treeSize": size}
        )
        return parse_leaves(resp, set(ids), size)

    def _prove(
        self, fields: dict[str, dict[str, Any]], ahead: LeavesAhead | None = None
    ) -> list[ProvenLeaf]:
        """Where each entry is in the log and its leaf (POST /v1/log/leaves), checked against
        the hash tiles that hold it; entries alone in their tile are proven by inclusion
        proofs instead (`SPARSE_BELOW`). A registry without the leaves endpoint: proofs."""
        cp = self.checkpoint
        assert cp is not None
        if not cp.size:
            self.pending += len(fields)
            return []
        if self.tiles is None:
            self.tiles = TileSet(cp.size, cp.root)
            self._load_tiles(upper=True)
        out: list[ProvenLeaf] = []
        cursors = list(fields)
        for i in range(0, len(cursors), LEAF_BATCH):
            ids = cursors[i : i + LEAF_BATCH]
            try:
                tiles_read: dict[TileNeed, bytes] = {}
                built: frozenset[TileNeed] = frozenset()
                if ahead is not None and ahead.ids == ids and ahead.size == cp.size:
                    answer, tiles_read, built = ahead.answer, ahead.tiles, ahead.built
                    ahead = None
                    if isinstance(answer, Exception):
                        raise answer
                    leaves = answer
                else:
                    leaves = self._read_leaves(ids, cp.size)
            except ApiRefused as exc:
                if exc.status not in (404, 405):
                    raise
                out += self._prove_by_proofs({c: fields[c] for c in cursors[i:]})
                break
            out += self._prove_by_tiles(ids, leaves, fields, tiles_read, built)
        self.verified += len(out)
        return out

    def _prove_by_tiles(
        self,
        ids: list[str],
        leaves_read: list[Leaf],
        fields: dict[str, dict[str, Any]],
        tiles_read: Mapping[TileNeed, bytes],
        built: frozenset[TileNeed] = frozenset(),
    ) -> list[ProvenLeaf]:
        """`tiles_read`: tiles read ahead as served or (`built`) made of the leaves read,
        verified here like any other; when a made one fails, the tiles are read as the log
        serves them and verified again (the check below then names the leaf at fault)."""
        cp, tiles = self.checkpoint, self.tiles
        assert cp is not None and tiles is not None
        asked = set(ids)
        size = cp.size
        found = {e: (idx, leaf) for e, idx, leaf in leaves_read}  # checked by parse_leaves
        self.pending += len(asked - set(found))
        per_tile = Counter(idx // TILE_WIDTH for idx, _ in found.values())
        self._load_tiles(tiles=set(per_tile))
        sparse = {t for t, n in per_tile.items() if n < SPARSE_BELOW and not tiles.has(0, t, 0)}
        dense = {c: v for c, v in found.items() if v[0] // TILE_WIDTH not in sparse}
        try:

            def fetch(need: list[TileNeed], *, made: bool = True) -> dict[TileNeed, bytes]:
                got = {
                    t: tiles_read[t] for t in need if t in tiles_read and (made or t not in built)
                }
                return {**got, **self._fetch_tiles([t for t in need if t not in got])}

            indexes = [idx for idx, _ in dense.values()]
            try:
                tiles.ensure(indexes, fetch)
            except TlogError:
                if not built:
                    raise
                tiles.ensure(indexes, lambda need: fetch(need, made=False))
        except TlogError as exc:
            self.fail("inclusion", f"the log's hash tiles are not those of its checkpoint: {exc}",
                      {"checkpoint": self.note.decode()})  # fmt: skip
        # In bulk: every leaf's hash against the verified tile's (leaf_hash inline), every
        # leaf against its entry; the first entry failing either check fails the sync.
        held, sha = tiles.tiles, hashlib.sha256
        dense_list = list(dense.items())
        leaves = [leaf for _c, (_i, leaf) in dense_list]
        reported = [fields[c] for c, _v in dense_list]
        logged = [
            held[(0, idx // TILE_WIDTH)][
                idx % TILE_WIDTH * HASH_SIZE : (idx % TILE_WIDTH + 1) * HASH_SIZE
            ]
            == sha(b"\x00" + leaf).digest()
            for _c, (idx, leaf) in dense_list
        ]
        checked = checked_leaves(leaves, reported, self.owner)
        if not all(logged) or any(why is not None for why, _o in checked):
            for (cursor, (idx, leaf)), ok, (why, _o) in zip(
                dense_list, logged, checked, strict=True
            ):
                if not ok:
                    self.fail("inclusion",
                              f"ledger entry {cursor} is not in the log: its leaf is not the "
                              f"one logged at index {idx}",
                              self._tile_evidence(cursor, idx, leaf, fields[cursor]))  # fmt: skip
                if why is not None:
                    self.fail("entry", f"ledger entry {cursor}: {why}",
                              self._tile_evidence(cursor, idx, leaf, fields[cursor]))  # fmt: skip
        out = [
            ProvenLeaf(cursor, idx, size, leaf, b"", leaf_cell(f, events, settled))
            for (cursor, (idx, leaf)), f, (_w, events), settled in zip(
                dense_list, reported, checked, _settlements(reported), strict=True
            )
        ]
        rest = {c: fields[c] for c in found if c not in dense}
        if rest:
            got = self._prove_by_proofs(rest)
            for p in got:
                if found[p.cursor] != (p.leaf_index, p.leaf):
                    raise MalformedError(f"the log names two leaves for entry {p.cursor}")
            out += got
        return out

    def _tile_evidence(
        self, cursor: str, idx: int, leaf: bytes, reported: dict[str, Any]
    ) -> dict[str, Any]:
        """A failed entry's evidence from the verified tiles: the leaf as served, its index,
        the inclusion proof of the hash the log holds there (any tlog tool verifies it against
        the checkpoint) and that hash."""
        tiles = self.tiles
        assert tiles is not None
        logged = tiles.leaf_hash_at(idx)
        return {
            "checkpoint": self.note.decode(),
            "entryId": cursor,
            "leafIndex": idx,
            "leaf": b64(leaf),
            "loggedLeafHash": b64(logged),
            "proof": [b64(h) for h in tiles.inclusion_proof(idx)],
            "reported": reported,
        }

    def _fetch_tiles(self, need: list[TileNeed]) -> dict[TileNeed, bytes]:
        """The tiles asked (`TILE_WORKERS` requests in flight); the caller verifies them."""
        if len(need) < 2:
            return {t: self._fetch_tile(t) for t in need}
        with read_ahead(min(TILE_WORKERS, len(need))) as pool:
            return dict(zip(need, pool.map(self._fetch_tile, need), strict=True))

    def _fetch_tile(self, tile: TileNeed) -> bytes:
        level, index, width = tile
        path = "/v1/log/" + tile_path(level, index, width)
        try:
            return self.client.http.request("GET", path, auth=False).content
        except ApiRefused as exc:
            if exc.status != 404 or width == TILE_WIDTH:
                raise
            # a log may serve only the full tile once it exists: its prefix is the same
            full = self.client.http.request(
                "GET", "/v1/log/" + tile_path(level, index), auth=False
            ).content
            return full[: width * HASH_SIZE]

    def _load_tiles(self, *, upper: bool = False, tiles: Iterable[int] = ()) -> None:
        """Stored tiles into the tile set: every tile above level 0 (`upper`, a few per
        65,536 leaves), or the level-0 tiles of these indexes not held yet."""
        ts = self.tiles
        assert ts is not None
        want = [t for t in tiles if (0, t) not in ts.tiles]
        if not upper and not want:
            return
        with self.ctx.db.session() as s:
            q = select(LogTile.level, LogTile.idx, LogTile.data).where(
                LogTile.registry_key == self.registry_key
            )
            rows: list[Any] = []
            if upper:
                rows += s.execute(q.where(LogTile.level > 0)).all()
            for i in range(0, len(want), 500):
                rows += s.execute(
                    q.where(LogTile.level == 0, LogTile.idx.in_(want[i : i + 500]))
                ).all()
        for level, idx, data in rows:
            ts.tiles[(int(level), int(idx))] = bytes(data)

    def _prove_by_proofs(self, fields: dict[str, dict[str, Any]]) -> list[ProvenLeaf]:
        """One inclusion proof per entry (POST /v1/log/proof/inclusion): for entries whose
        tile holds few of the user's leaves, and registries that serve no leaves endpoint."""
        cp = self.checkpoint
        assert cp is not None
        out: list[ProvenLeaf] = []
        cursors = list(fields)
        batch = InclusionBatch(cp.size, cp.root) if cp.size else None
        for i in range(0, len(cursors), PROOF_BATCH):
            ids = cursors[i : i + PROOF_BATCH]
            body = self.client.http.json(
                "POST",
                "/v1/log/proof/inclusion",
                auth=False,
                json={"entryIds": ids, "treeSize": cp.size},
            )
            proofs = body.get("proofs")
            if not isinstance(proofs, list):
                raise MalformedError("the inclusion proofs answer has no list of proofs")
            got: set[str] = set()
            for p in proofs:
                if not isinstance(p, dict) or p.get("entryId") not in fields:
                    raise MalformedError("an inclusion proof for an entry that was not asked")
                cursor = str(p["entryId"])
                idx = p.get("leafIndex")
                leaf = unb64(p.get("leaf"), "leaf")
                path = hashes(p.get("proof"), "inclusion proof")
                try:
                    if not isinstance(idx, int) or batch is None:
                        raise MalformedError("leafIndex is not an integer")
                    batch.verify(idx, leaf_hash(leaf), path)
                except TlogError as exc:
                    self.fail("inclusion", f"ledger entry {cursor} is not in the log: {exc}",
                              self._evidence(p, fields[cursor]))  # fmt: skip
                why, events = checked_leaf(leaf, fields[cursor], self.owner)
                if why is not None:
                    self.fail("entry", f"ledger entry {cursor}: {why}",
                              self._evidence(p, fields[cursor]))  # fmt: skip
                got.add(cursor)
                out.append(ProvenLeaf(cursor, idx, cp.size, leaf, b"".join(path),
                                      leaf_cell(fields[cursor], events)))  # fmt: skip
            self.pending += len(set(ids) - got)
        return out

    def _evidence(self, p: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
        """What a failed entry is recorded with: the checkpoint, the proof as served and what
        the registry reported."""
        return {
            "checkpoint": self.note.decode(),
            "entryId": str(p["entryId"]),
            "leafIndex": p.get("leafIndex"),
            "leaf": p.get("leaf"),
            "proof": p.get("proof"),
            "reported": reported,
        }

    def store_events(self, proofs: Sequence[LogProof | ProvenLeaf], session: Session) -> None:
        """Only the leaf events of these verified entries, in the caller's transaction (the
        inclusions themselves stored later by `store`, with `events=False`)."""
        cells = self._cells(proofs)
        if cells:
            session.connection().exec_driver_sql(_INSERT_EVENTS_JSON, (self.scope, encode(cells)))

    @staticmethod
    def _cells(proofs: Iterable[LogProof | ProvenLeaf]) -> list[tuple[Any, ...]]:
        """The `LogLeafEvents` rows of these verified entries (the ids in them are checked
        ids, and the day a date: JSON text as they are)."""
        return [
            (c[0], c[1], c[2], c[3], p.cursor, c[4], c[5])
            for p in proofs
            if isinstance(p, ProvenLeaf) and (c := p.cell) is not None
        ]

    def store(
        self,
        proofs: Iterable[LogProof | ProvenLeaf],
        session: Session | None = None,
        *,
        events: bool = True,
    ) -> None:
        """Add the verified entries and the tiles verified since the last call in one
        transaction, a few statements in all; an entry already stored is kept as it is, a
        stored tile is only ever replaced by a wider one. With `session`: in the
        caller's transaction (committed by the caller; the tiles count as stored once it is
        called). Without `events`: not their leaf events (`store_events` stored them)."""
        scope = self.scope
        proofs = list(proofs)
        rows = [
            (scope if isinstance(p, ProvenLeaf) else p.scope, p.cursor, p.leaf_index,
             p.tree_size, p.leaf, p.proof)
            for p in proofs
        ]  # fmt: skip
        # the tiles verified so far (the sync may verify more meanwhile: stored next time)
        added = dict(self.tiles.added) if self.tiles is not None else {}
        tiles = self._unstored_tiles(added)
        if not rows and not tiles:
            return

        def write(s: Session) -> None:
            if tiles:
                s.execute(upsert_tiles(), tiles)
            # plain statements, no per-row processing by the ORM (a first sync stores
            # hundreds of thousands of rows)
            conn = s.connection()
            # rows of this sync's scope whose leaf and proof are text in one statement,
            # any other by executemany
            plain, other = [], []
            for r in rows:
                if r[0] == scope:
                    leaf, proof = as_text(r[4]), as_text(r[5])
                    if leaf is not None and proof is not None:
                        plain.append((r[1], r[2], r[3], leaf, proof))
                        continue
                other.append(r)
            if plain:
                conn.exec_driver_sql(_INSERT_PROOFS_JSON, (scope, encode(plain)))
            for i in range(0, len(other), STORE_CHUNK):
                conn.exec_driver_sql(_INSERT_PROOF, other[i : i + STORE_CHUNK])
            if events:
                self.store_events(proofs, s)

        if session is not None:
            write(session)
        else:
            with self.ctx.db.session() as s:
                write(s)
                s.commit()
        if self.tiles is not None:
            for tile, data in added.items():
                if self.tiles.added.get(tile) is data:
                    del self.tiles.added[tile]

    def _unstored_tiles(self, added: Mapping[tuple[int, int], bytes]) -> list[dict[str, Any]]:
        ts = self.tiles
        if ts is None:
            return []
        return [
            {"registry_key": self.registry_key, "level": level, "idx": idx,
             "width": len(data) // HASH_SIZE, "tree_size": ts.size, "data": data}
            for (level, idx), data in sorted(added.items())
        ]  # fmt: skip

    def _unproven(self, s: Session) -> Sequence[RewardRecord]:
        """Stored entries without a verified inclusion. The entries (their rollup) and the
        proofs (their count, kept by triggers) are compared first: when every entry has one,
        as after a sync that verified everything, no entry is read."""
        entries = s.scalar(
            select(func.sum(LedgerRollupTotal.entries)).where(
                LedgerRollupTotal.registry_key == self.registry_key,
                LedgerRollupTotal.owner == self.owner,
            )
        )
        if int(entries or 0) <= ledger_proofs(s, self.registry_key, self.owner):
            return []
        return (
            s.execute(
                select(RewardRecord)
                .outerjoin(
                    LogProof,
                    (LogProof.scope == RewardRecord.scope)
                    & (LogProof.cursor == RewardRecord.cursor),
                )
                .where(RewardRecord.scope == self.scope, LogProof.cursor.is_(None))
            )
            .scalars()
            .all()
        )

    def verify_acceptances(self, contribution_ids: Sequence[str]) -> None:
        """The acceptance leaf of each accepted contribution (app.services.transparency
        .acceptance)."""
        self.pending_acceptances = verify_acceptances(self, contribution_ids)

    def expect_usage(self, sinces: Sequence[tuple[str, date]]) -> None:
        """The usage windows this sync will check, in order (contribution, first day): their
        stored days are then read for many contributions at once (figures.StoredDays)."""
        self.usage_days = StoredDays(self, sinces)

    def check_usage(self, window: UsageWindow, catch_up: CatchUp) -> None:
        """A usage window against the stored entries, before it is stored (see figures);
        `catch_up` fetches the entries written since the last were fetched."""
        check_usage(self, window, catch_up)

    def finish(self, catch_up: CatchUp = lambda: None) -> None:
        """Verify stored entries still pending, then check the registry's summary figures
        against the entries it reported."""
        with self.ctx.db.session() as s:
            fields = {r.cursor: record_fields(r) for r in self._unproven(s)}
        self.pending = 0
        if fields:
            self.store(self._prove(fields))
        # The summary's figures are sums of the entries: checked again when the copy's entries
        # changed since they last matched, and at least once a day (a sync with nothing new in
        # between reads no summary).
        before = self._copy_state()
        mark = self._summary_mark()
        if before is not None and mark is not None and mark[0] == before:
            checked = mark[1] if mark[1].tzinfo else mark[1].replace(tzinfo=UTC)
            if datetime.now(UTC) - checked < SUMMARY_RECHECK:
                return
        check_summary(self, catch_up)
        self._set_summary_mark(self._copy_state())

    def _copy_state(self) -> str | None:
        """The stored entries' count and sum (their rollup), None while there are none."""
        with self.ctx.db.session() as s:
            totals = LedgerRollupTotal
            count, total = s.execute(
                select(func.sum(totals.entries), func.sum(totals.amount_micro)).where(
                    totals.registry_key == self.registry_key, totals.owner == self.owner
                )
            ).one()
        return None if not count else f"{int(count)}:{int(total)}"

    def _summary_mark(self) -> tuple[str | None, datetime] | None:
        """The copy's state when the summary last matched, and when that was."""
        with self.ctx.db.session() as s:
            row = s.get(SyncCursor, (self.registry_key, self.owner, STREAM_SUMMARY_CHECKED))
            return (row.cursor, row.synced_at) if row is not None else None

    def _set_summary_mark(self, state: str | None) -> None:
        with self.ctx.db.session() as s:
            row = s.get(SyncCursor, (self.registry_key, self.owner, STREAM_SUMMARY_CHECKED))
            if row is None:
                row = SyncCursor(
                    registry_key=self.registry_key, owner=self.owner, stream=STREAM_SUMMARY_CHECKED
                )
                s.add(row)
            row.cursor = state
            row.synced_at = datetime.now(UTC)
            s.commit()
