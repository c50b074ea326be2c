"""Offline checks of what is stored: `audit` re-verifies every checkpoint's signature, the chain
of consistency proofs between them, the stored hash tiles against those checkpoints, and every
entry's inclusion (its leaf's hash in a verified tile, or its own audit path) and leaf;
`compare` checks the stored checkpoints against another contributor's export (split-view
detection: two checkpoints of one size with different roots, both signed by the log key, prove
the log showed two histories)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import UsageError
from app.services.context import ServiceContext
from app.services.transparency.acceptance import (
    ACCEPTANCE_PREFIX,
    Submitted,
    acceptance_mismatch,
    submitted,
)
from app.services.transparency.failures import failure_json, split_hashes
from app.services.transparency.leaves import checked_leaf, entry_fields
from app.services.transparency.sync import leaf_cell
from app.store.rewards_models import LedgerScope, RewardRecord
from app.store.tlog_models import LogCheckpoint, LogFailure, LogPin, LogProof, LogTile
from app.tlog import (
    InclusionBatch,
    TlogError,
    Verifier,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
)
from app.tlog.merkle import HASH_SIZE
from app.tlog.tiles import TILE_WIDTH
from app.tlog.tileset import verify_stored_tiles


@dataclass
class AuditReport:
    registries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem in what is stored, and no recorded failure the user has not
        acknowledged (`acknowledge_failures`)."""
        return not self.problems and not any(
            f["acknowledgedAt"] is None for r in self.registries for f in r["failures"]
        )

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "registries": self.registries, "problems": self.problems}


_RECORD_COLUMNS = (
    RewardRecord.cursor, RewardRecord.event_id, RewardRecord.contribution_id,
    RewardRecord.model_id, RewardRecord.method, RewardRecord.amount_micro, RewardRecord.at,
    RewardRecord.demo,
)  # fmt: skip
_PROOF_COLUMNS = (
    LedgerScope.owner, LogProof.cursor, LogProof.leaf_index, LogProof.tree_size, LogProof.leaf,
    LogProof.proof,
)  # fmt: skip


def _verifier_for(s: Session, note: bytes) -> Verifier | None:
    origin = note.split(b"\n", 1)[0].decode("utf-8", "replace")
    pin = s.get(LogPin, origin)
    return None if pin is None else Verifier.from_vkey(pin.vkey)


def audit(ctx: ServiceContext) -> AuditReport:
    """Re-verify every stored checkpoint, consistency proof and inclusion proof, offline."""
    report = AuditReport()
    with ctx.db.session() as s:
        keys = sorted(set(s.scalars(select(LogCheckpoint.registry_key).distinct())))
        for key in keys:
            problems: list[str] = []
            cps = list(
                s.scalars(
                    select(LogCheckpoint)
                    .where(LogCheckpoint.registry_key == key)
                    .order_by(LogCheckpoint.size)
                )
            )
            roots: dict[int, bytes] = {}
            for c in cps:
                v = _verifier_for(s, c.note)
                try:
                    if v is None:
                        raise TlogError("no pinned key for this log")
                    cp, _ = open_checkpoint(c.note, v, v.name)
                    if (cp.size, cp.root) != (c.size, c.root):
                        raise TlogError("the stored size or root is not the checkpoint's")
                    if c.prev_size is not None:
                        verify_consistency(
                            c.prev_size,
                            c.size,
                            roots[c.prev_size],
                            c.root,
                            split_hashes(c.consistency),
                        )
                except (TlogError, KeyError) as exc:
                    problems.append(f"checkpoint of size {c.size}: {exc}")
                roots[c.size] = c.root
            # rows, not ORM objects: an audit reads every stored entry and proof
            records = {
                r.cursor: r
                for r in s.execute(
                    select(*_RECORD_COLUMNS)
                    .join(LedgerScope, LedgerScope.id == RewardRecord.scope)
                    .where(LedgerScope.registry_key == key)
                )
            }
            tiles: dict[tuple[int, int], bytes] = {}
            sizes: dict[tuple[int, int], int] = {}
            for level, idx, size, data in s.execute(
                select(LogTile.level, LogTile.idx, LogTile.tree_size, LogTile.data).where(
                    LogTile.registry_key == key
                )
            ):
                tiles[(level, idx)] = bytes(data)
                sizes[(level, idx)] = int(size)
            problems += verify_stored_tiles(tiles, sizes, roots)
            batches: dict[int, InclusionBatch] = {}
            cells: dict[_CellKey, tuple[int, int]] = {}  # from the verified leaves
            failed: set[str] = set()
            proofs = s.execute(
                select(*_PROOF_COLUMNS)
                .join(LedgerScope, LedgerScope.id == LogProof.scope)
                .where(LedgerScope.registry_key == key)
            ).all()
            acceptances = [p for p in proofs if p.cursor.startswith(ACCEPTANCE_PREFIX)]
            facts = submitted(s, [p.cursor.removeprefix(ACCEPTANCE_PREFIX) for p in acceptances])
            for p in proofs:
                try:
                    root = roots.get(p.tree_size)
                    if root is None:
                        raise TlogError(f"no stored checkpoint of size {p.tree_size}")
                    if p.proof:
                        b = batches.get(p.tree_size)
                        if b is None:
                            b = batches[p.tree_size] = InclusionBatch(p.tree_size, root)
                        b.verify(p.leaf_index, leaf_hash(p.leaf), split_hashes(p.proof))
                    else:
                        _check_in_tile(p, tiles)
                    if p.cursor.startswith(ACCEPTANCE_PREFIX):
                        _check_acceptance(p, facts)
                        continue
                    r = records.get(p.cursor)
                    if r is None:
                        raise TlogError("the proven entry is not stored")
                    fields = entry_fields(*r)
                    why, events = checked_leaf(p.leaf, fields, p.owner)
                    if why is not None:
                        raise TlogError(why)
                    cell = leaf_cell(fields, events)
                    if cell is not None:
                        cells[(p.owner, *cell[:4], p.cursor)] = cell[4:]
                except TlogError as exc:
                    failed.add(p.cursor)
                    what = p.cursor.replace(ACCEPTANCE_PREFIX, "acceptance of ", 1)
                    if what == p.cursor:
                        what = f"ledger entry {p.cursor}"
                    problems.append(f"{what}: {exc}")
            problems += _check_cells(s, key, cells, failed)
            failures = [
                failure_json(f)
                for f in s.scalars(select(LogFailure).where(LogFailure.registry_key == key))
            ]
            pending = len(set(records) - {p.cursor for p in proofs})
            report.registries.append(
                {
                    "registryKey": key,
                    "checkpoints": len(cps),
                    "treeSize": cps[-1].size if cps else 0,
                    "verifiedEntries": len(proofs) - len(acceptances),
                    "verifiedAcceptances": len(acceptances),
                    "pendingEntries": pending,
                    "problems": problems,
                    "failures": failures,
                }
            )
            report.problems.extend(f"{key[:40]}…: {p}" for p in problems)
    return report


_CellKey = tuple[str, str, str, str, str, str]  # owner, contribution, day, model, method, id
MAX_CELL_PROBLEMS = 20


def _check_cells(
    s: Session, key: str, cells: dict[_CellKey, tuple[int, int]], failed: set[str]
) -> list[str]:
    """The events filed per contribution and day (`LogLeafEvents`, what the sync checks the
    registry's usage against) re-derived from the verified leaves: each one as its leaf says,
    none without a verified leaf that names it (entries whose leaf failed above are left to
    that problem)."""
    raw = s.connection().connection.dbapi_connection
    assert raw is not None
    stored: dict[_CellKey, tuple[int, int]] = {
        row[:6]: row[6:]
        for row in raw.execute(
            "SELECT sc.owner, e.contribution_id, e.day, e.model_id, e.method, e.cursor, "
            "e.settlement, e.events FROM log_leaf_events AS e "
            "JOIN ledger_scopes AS sc ON sc.id = e.scope WHERE sc.registry_key = ?",
            (key,),
        )
    }
    if stored == cells:  # the usual case, compared in one step
        return []
    differ = [k for k in cells.keys() | stored.keys() if cells.get(k) != stored.get(k)]
    wrong: list[str] = []
    for k in sorted(differ):
        if k[5] in failed:
            continue
        have, want = stored.get(k), cells.get(k)
        if want is None:
            why = f"events filed for {k[1]} on {k[2]} ({k[3]}, {k[4]}) that no verified leaf names"
        elif have is None:
            why = f"its leaf's {want[1]} events are not filed for {k[1]} on {k[2]}"
        else:
            why = (f"the events filed for it ({have[1]}, settlement {have[0]}) are not its "
                   f"leaf's ({want[1]}, settlement {want[0]})")  # fmt: skip
        wrong.append(f"ledger entry {k[5]}: {why}")
    if len(wrong) > MAX_CELL_PROBLEMS:
        more = len(wrong) - MAX_CELL_PROBLEMS
        wrong = [*wrong[:MAX_CELL_PROBLEMS], f"{more:,} more entries whose filed events differ"]
    return wrong


def _check_in_tile(p: Any, tiles: dict[tuple[int, int], bytes]) -> None:
    """The entry's leaf hashes to the hash at its index in the stored level-0 tile (verified
    above with the other tiles)."""
    tile, pos = divmod(p.leaf_index, TILE_WIDTH)
    data = tiles.get((0, tile), b"")
    logged = data[pos * HASH_SIZE : (pos + 1) * HASH_SIZE]
    if len(logged) != HASH_SIZE:
        raise TlogError(f"no stored tile holds leaf {p.leaf_index}")
    if logged != leaf_hash(p.leaf):
        raise TlogError(f"the stored leaf is not the one logged at index {p.leaf_index}")


def _check_acceptance(p: Any, facts: dict[str, Submitted]) -> None:
    """The proven acceptance leaf against the catalogue (if it still holds the item)."""
    sub = facts.get(p.cursor.removeprefix(ACCEPTANCE_PREFIX))
    why = None if sub is None else acceptance_mismatch(p.leaf, sub, p.owner)
    if why is not None:
        raise TlogError(why)


@dataclass(frozen=True)
class Comparison:
    compared: int
    split_views: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.split_views


def compare(ctx: ServiceContext, path: Path) -> Comparison:
    """Check our stored checkpoints against those in another contributor's export: any size
    both hold must have one root (both notes are verified with our pinned key first)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        theirs = [c["note"] for log in doc["logs"] for c in log["checkpoints"]]
        theirs += [
            n
            for log in doc["logs"]
            for f in log["failures"]
            for n in f["evidence"].get("checkpoints", [])
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"cannot read the evidence file {path}: {exc}") from None
    compared = 0
    split: list[dict[str, Any]] = []
    with ctx.db.session() as s:
        for text in theirs:
            note = str(text).encode()
            v = _verifier_for(s, note)
            if v is None:
                continue
            try:
                cp, _ = open_checkpoint(note, v, v.name)
            except TlogError:
                continue  # not signed by the key we trust: proves nothing
            for mine in s.scalars(
                select(LogCheckpoint).where(
                    LogCheckpoint.registry_key == v.vkey, LogCheckpoint.size == cp.size
                )
            ):
                compared += 1
                if mine.root != cp.root:
                    split.append(
                        {"size": cp.size, "ours": mine.note.decode(), "theirs": note.decode()}
                    )
    return Comparison(compared, split)
