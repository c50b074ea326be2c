"""The transparency log, served: C2SP tlog-tiles under /v1/log/ (checkpoint, hash tiles,
entry bundles) and JSON inclusion / consistency proofs for clients that verify ready-made
proofs instead of fetching tiles. Everything here is public: a log is meant to be read by
anyone (monitors, other contributors comparing checkpoints)."""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from typing import Annotated

import msgspec
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.tlog import MalformedError, Tile, parse_tile_path
from app.tlog.tiles import TILE_HEIGHT, TILE_WIDTH
from registry import translog
from registry.db.session import DbSession
from registry.errors import ERROR_RESPONSES, ApiError
from registry.translog import LOG_TILES

router = APIRouter(tags=["log"], responses=ERROR_RESPONSES)

MAX_BATCH = 1000
MAX_LEAVES = 10_000  # ids per POST /v1/log/leaves (a rewards page holds up to 10,000 entries)
IMMUTABLE = "public, max-age=31536000, immutable"
TILE_CACHE_BYTES = 32 * 1024 * 1024  # full hash tiles are 8 KiB, entry bundles a few 10s
READ_AHEAD = 16  # full hash tiles read at a time when one is missed (128 KiB)
TILE_BYTES = TILE_WIDTH * 32  # a full hash tile
_SIZE = Annotated[int, Query(ge=0, le=2**62)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class InclusionProof(BaseModel):
    entryId: str = Field(description="The ledger entry id (or accepted contribution id)")
    leafIndex: int
    leaf: str = Field(description="The leaf bytes (canonical JSON), base64")
    proof: list[str] = Field(description="RFC 6962 audit path, base64 hashes, leaf upwards")


class InclusionProofs(BaseModel):
    treeSize: int
    checkpoint: str | None = Field(
        description="The signed checkpoint of this tree size (null if none was published at "
        "exactly this size)"
    )
    proofs: list[InclusionProof]
    missing: list[str] = Field(default_factory=list, description="Ids not in the log yet")


class InclusionRequest(BaseModel):
    entryIds: list[str] = Field(default_factory=list, max_length=MAX_BATCH)
    contributionIds: list[str] = Field(default_factory=list, max_length=MAX_BATCH)
    treeSize: int | None = Field(default=None, ge=0, le=2**62)


class LoggedLeaf(BaseModel):
    entryId: str = Field(description="The ledger entry id (or accepted contribution id)")
    leafIndex: int
    leaf: str = Field(description="The leaf bytes (canonical JSON), base64")


class LoggedLeaves(BaseModel):
    treeSize: int
    checkpoint: str | None = Field(
        description="The signed checkpoint of this tree size (null if none was published at "
        "exactly this size)"
    )
    leaves: list[LoggedLeaf]
    missing: list[str] = Field(default_factory=list, description="Ids not in the log yet")


class LeavesRequest(BaseModel):
    entryIds: list[str] = Field(default_factory=list, max_length=MAX_LEAVES)
    contributionIds: list[str] = Field(default_factory=list, max_length=MAX_BATCH)
    treeSize: int | None = Field(default=None, ge=0, le=2**62)


class ConsistencyProof(BaseModel):
    fromSize: int = Field(alias="from")
    toSize: int = Field(alias="to")
    checkpoint: str | None = Field(description="The signed checkpoint of size `to`, if any")
    proof: list[str]


def _tree_size(session: DbSession, asked: int | None) -> int:
    size = translog.tree_size(session)
    if asked is None:
        return size
    if asked > size:
        raise ApiError(404, "tree_size_unknown", f"The log has {size} leaves, not {asked}.")
    return asked


@router.get(
    "/v1/log/checkpoint",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)",
)
def checkpoint(session: DbSession) -> Response:
    translog.catch_up(session)
    note = translog.latest_checkpoint(session)
    return Response(
        note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.get(
    "/v1/log/tile/{path:path}",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        }
    },
    summary="A hash tile or entry bundle (C2SP tlog-tiles)",
)
async def tile(request: Request, path: Annotated[str, Path(max_length=200)]) -> Response:
    # Full tiles never change once the tree reaches them: they come from a small in-memory
    # cache without touching the database (or a worker thread); a miss, or a partial tile at
    # the right edge, is one read on a worker thread. A missed full hash tile brings the next
    # full ones of its level along (clients fetch runs of neighbouring tiles).
    try:
        t = parse_tile_path("tile/" + path)
    except MalformedError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    full = t.width == TILE_WIDTH
    cache = _tile_cache(request)
    key = (t.level, t.index)
    data = cache.get(key) if full else None
    if data is None:
        sessions: sessionmaker[Session] = request.app.state.sessions
        size, data, ahead = await run_in_threadpool(_read_tile, sessions, t)
        if data is None:
            raise ApiError(404, "not_found", f"The log has no {t.path} (tree size {size}).")
        if full:
            cache.put(key, data)
        for k, v in ahead.items():
            cache.put(k, v)
    headers = {"Cache-Control": IMMUTABLE if full else "public, max-age=60"}
    return Response(data, media_type="application/octet-stream", headers=headers)


def _read_tile(
    sessions: sessionmaker[Session], t: Tile
) -> tuple[int, bytes | None, dict[tuple[int | None, int], bytes]]:
    """(tree size, the tile or None, full hash tiles read ahead: the READ_AHEAD - 1 after a
    full hash tile at its level, those the tree holds in full)."""
    with sessions() as session:
        size = translog.tree_size(session)
        if t.level is None:
            return size, translog.entry_bundle(session, size, t.index, t.width), {}
        data = translog.hash_tile(session, size, t.level, t.index, t.width)
        ahead: dict[tuple[int | None, int], bytes] = {}
        if data is None or t.width != TILE_WIDTH:
            return size, data, ahead
        full = (size >> (TILE_HEIGHT * (t.level + 1))) - 1  # the level's last full tile
        last = min(t.index + READ_AHEAD - 1, full)
        if last > t.index:
            rows = session.execute(
                select(LOG_TILES.c.idx, LOG_TILES.c.data).where(
                    LOG_TILES.c.level == t.level,
                    LOG_TILES.c.idx > t.index,
                    LOG_TILES.c.idx <= last,
                )
            )
            for idx, tile_data in rows:
                if len(tile_data) >= TILE_BYTES:
                    ahead[(t.level, int(idx))] = bytes(tile_data[:TILE_BYTES])
        return size, data, ahead


class TileCache:
    """Least recently used full tiles and entry bundles, bounded in bytes (per process: they
    are immutable, so every worker's copy is the same)."""

    def __init__(self, max_bytes: int = TILE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[int | None, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int | None, int]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[int | None, int], data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.bytes += len(data) - (0 if old is None else len(old))
            self._items[key] = data
            while self.bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._items)


def _tile_cache(request: Request) -> TileCache:
    state = request.app.state
    cache: TileCache | None = getattr(state, "tile_cache", None)
    if cache is None:
        cache = state.tile_cache = TileCache()
    return cache


def _proofs(
    session: DbSession, kind: str, ids: list[str], size: int
) -> tuple[list[InclusionProof], list[str]]:
    found = translog.leaf_of(session, kind, ids)
    log = translog.tiled_log(session, translog.tree_size(session))
    out: list[InclusionProof] = []
    missing: list[str] = []
    for ref in ids:
        hit = found.get(ref)
        if hit is None or hit[0] >= size:
            missing.append(ref)
            continue
        idx, leaf = hit
        out.append(
            InclusionProof(
                entryId=ref,
                leafIndex=idx,
                leaf=_b64(leaf),
                proof=[_b64(h) for h in log.inclusion_proof(idx, size)],
            )
        )
    return out, missing


class LoggedLeafOut(msgspec.Struct):
    """`LoggedLeaf` for msgspec: the same field names, order and JSON."""

    entryId: str
    leafIndex: int
    leaf: bytes  # msgspec writes bytes as standard base64, padded: as `_b64` does


class LoggedLeavesOut(msgspec.Struct):
    """`LoggedLeaves` for msgspec (the OpenAPI document describes `LoggedLeaves`)."""

    treeSize: int
    checkpoint: str | None
    leaves: list[LoggedLeafOut]
    missing: list[str]


_ENCODER = msgspec.json.Encoder()


def _leaves(
    session: DbSession, kind: str, ids: list[str], size: int
) -> tuple[list[LoggedLeafOut], list[str]]:
    found = translog.leaf_of(session, kind, ids)
    out: list[LoggedLeafOut] = []
    missing: list[str] = []
    for ref in ids:
        hit = found.get(ref)
        if hit is None or hit[0] >= size:
            missing.append(ref)
        else:
            out.append(LoggedLeafOut(ref, hit[0], hit[1]))
    return out, missing


def _check_entry_ids(ids: list[str]) -> None:
    for eid in ids:
        if not eid.isascii() or not eid.isdigit() or len(eid) > 18:
            raise ApiError(422, "invalid_entry_id", "Entry ids are ledger ids (digits).")


def _note(session: DbSession, size: int) -> str | None:
    note = translog.checkpoint_at(session, size)
    return None if note is None else note.decode("utf-8")


@router.get(
    "/v1/log/proof/inclusion",
    response_model=InclusionProof,
    summary="Inclusion proof of one ledger entry (or contribution acceptance)",
)
def inclusion(
    session: DbSession,
    entryId: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,  # noqa: N803
    contributionId: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._-]{1,40}$")] = None,  # noqa: N803
    treeSize: _SIZE | None = None,  # noqa: N803
) -> InclusionProof:
    if (entryId is None) == (contributionId is None):
        raise ApiError(422, "invalid_query", "Give exactly one of entryId and contributionId.")
    translog.catch_up(session)
    size = _tree_size(session, treeSize)
    if entryId is not None:
        proofs, _ = _proofs(session, translog.KIND_LEDGER, [str(int(entryId))], size)
    else:
        assert contributionId is not None
        proofs, _ = _proofs(session, translog.KIND_ACCEPTANCE, [contributionId], size)
    if not proofs:
        raise ApiError(404, "not_in_log", f"That entry is not in the tree of size {size}.")
    return proofs[0]


@router.post(
    "/v1/log/proof/inclusion",
    response_model=InclusionProofs,
    summary="Inclusion proofs of many ledger entries against one tree size",
)
def inclusion_batch(session: DbSession, body: InclusionRequest) -> InclusionProofs:
    translog.catch_up(session)
    size = _tree_size(session, body.treeSize)
    _check_entry_ids(body.entryIds)
    proofs, missing = _proofs(session, translog.KIND_LEDGER, body.entryIds, size)
    more, missing2 = _proofs(session, translog.KIND_ACCEPTANCE, body.contributionIds, size)
    return InclusionProofs(
        treeSize=size, checkpoint=_note(session, size), proofs=proofs + more,
        missing=missing + missing2,
    )  # fmt: skip


@router.post(
    "/v1/log/leaves",
    response_model=LoggedLeaves,
    summary="Leaf index and leaf bytes of many ledger entries (no proofs: verify with tiles)",
)
def leaves(session: DbSession, body: LeavesRequest) -> Response:
    """Where each entry is in the tree of `treeSize` leaves and its leaf bytes. A client
    verifies them against the hash tiles it fetches (one level-0 tile covers 256 leaves)
    instead of one inclusion proof per entry."""
    # Encoded by msgspec (`LoggedLeavesOut`: the same JSON as `LoggedLeaves`, which documents
    # it): a fraction of pydantic's CPU on answers of 10,000 leaves.
    translog.catch_up(session)
    size = _tree_size(session, body.treeSize)
    _check_entry_ids(body.entryIds)
    found, missing = _leaves(session, translog.KIND_LEDGER, body.entryIds, size)
    more, missing2 = _leaves(session, translog.KIND_ACCEPTANCE, body.contributionIds, size)
    answer = LoggedLeavesOut(size, _note(session, size), found + more, missing + missing2)
    return Response(content=_ENCODER.encode(answer), media_type="application/json")


@router.get(
    "/v1/log/proof/consistency",
    response_model=ConsistencyProof,
    summary="Consistency proof between two tree sizes",
)
def consistency(
    session: DbSession,
    from_: Annotated[int, Query(alias="from", ge=0, le=2**62)],
    to: _SIZE | None = None,
) -> ConsistencyProof:
    translog.catch_up(session)
    size = _tree_size(session, to)
    if from_ > size:
        raise ApiError(422, "invalid_range", f"from ({from_}) is larger than to ({size}).")
    log = translog.tiled_log(session, translog.tree_size(session))
    proof = log.consistency_proof(from_, size) if from_ else []
    return ConsistencyProof.model_validate(
        {"from": from_, "to": size, "checkpoint": _note(session, size),
         "proof": [_b64(h) for h in proof]}
    )  # fmt: skip
