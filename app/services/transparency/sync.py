"""One rewards sync verified against the registry's log: the checkpoint first
(app.services.transparency.checkpoints), then every ledger entry of the user it reports
(inclusion proof, and a leaf that says exactly what was reported), then the figures it reports
besides the entries (app.services.transparency.figures)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.registry_client.api import RegistryClient
from app.registry_client.usage import RewardEntry, UsageWindow
from app.services.context import ServiceContext
from app.services.transparency.acceptance import verify_acceptances
from app.services.transparency.checkpoints import advance_checkpoint
from app.services.transparency.failures import hashes, record_failure, unb64
from app.services.transparency.figures import CatchUp, check_summary, check_usage
from app.services.transparency.leaves import entry_fields, leaf_mismatch, record_fields
from app.services.transparency.pins import pinned
from app.store.rewards_models import RewardRecord
from app.store.tlog_models import LogProof
from app.tlog import Checkpoint, InclusionBatch, MalformedError, TlogError, Verifier, leaf_hash

PROOF_BATCH = 1000
STORE_CHUNK = 5000  # rows per executemany call when storing proofs


class ProvenLeaf(NamedTuple):
    """A verified inclusion proof of one of the sync's own entries, not stored yet (a row of
    `LogProof` for the sync's registry key and owner)."""

    cursor: str
    leaf_index: int
    tree_size: int
    leaf: bytes
    proof: bytes  # concatenated 32-byte hashes


@dataclass
class LogSync:
    """Verification of one rewards sync against the registry's log (see the module doc)."""

    ctx: ServiceContext
    client: RegistryClient
    registry_key: str
    owner: str
    verifier: Verifier
    checkpoint: Checkpoint | None = None
    note: bytes = b""
    pending: int = 0
    verified: int = 0
    settled_floor: int | None = None  # see figures.stored_floor
    pending_acceptances: int = 0

    @classmethod
    def start(
        cls, ctx: ServiceContext, client: RegistryClient, registry_key: str, owner: str
    ) -> LogSync | None:
        """Begin verification if the registry (its key: a pinned log key) serves a log:
        fetch and check its checkpoint, store it. None for a registry without a log."""
        try:
            verifier = Verifier.from_vkey(registry_key)
        except MalformedError:
            return None
        pin = pinned(ctx, verifier.name)
        if pin is None or pin.vkey != registry_key:
            return None
        sync = cls(ctx, client, registry_key, owner, verifier)
        sync.begin()
        return sync

    def fail(self, what: str, message: str, evidence: dict[str, Any]) -> NoReturn:
        record_failure(self.ctx, self.registry_key, what, message, evidence)

    def begin(self) -> None:
        self.checkpoint, self.note = advance_checkpoint(
            self.ctx, self.client, self.registry_key, self.verifier, self.fail
        )

    def verify(self, items: Sequence[RewardEntry]) -> list[ProvenLeaf]:
        """Inclusion proofs of the reported entries, verified (not stored yet); entries the
        log does not hold yet stay pending. A wrong entry or proof fails the sync."""
        fields = {
            e.cursor: entry_fields(
                e.cursor, e.event_id, e.contribution_id, e.model_id, e.method,
                e.amount_micro, e.at, e.demo,
            )
            for e in items
        }  # fmt: skip
        return self._prove(fields)

    def _prove(self, fields: dict[str, dict[str, Any]]) -> list[ProvenLeaf]:
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
                why = leaf_mismatch(leaf, fields[cursor], self.owner)
                if why is not None:
                    self.fail("entry", f"ledger entry {cursor}: {why}",
                              self._evidence(p, fields[cursor]))  # fmt: skip
                got.add(cursor)
                out.append(ProvenLeaf(cursor, idx, cp.size, leaf, b"".join(path)))
            self.pending += len(set(ids) - got)
        self.verified += len(out)
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

    def store(self, proofs: Iterable[LogProof | ProvenLeaf]) -> None:
        """Add the verified proofs in one transaction, with one multi-row statement per
        chunk; a proof already stored for the same entry is kept as it is."""
        rows = [
            {
                "registry_key": self.registry_key if isinstance(p, ProvenLeaf) else p.registry_key,
                "owner": self.owner if isinstance(p, ProvenLeaf) else p.owner,
                "cursor": p.cursor,
                "leaf_index": p.leaf_index,
                "tree_size": p.tree_size,
                "leaf": p.leaf,
                "proof": p.proof,
            }
            for p in proofs
        ]
        if not rows:
            return
        stmt = sqlite_insert(LogProof).on_conflict_do_nothing()
        with self.ctx.db.session() as s:
            for i in range(0, len(rows), STORE_CHUNK):
                s.execute(stmt, rows[i : i + STORE_CHUNK])
            s.commit()

    def verify_acceptances(self, contribution_ids: Sequence[str]) -> None:
        """The acceptance leaf of each accepted contribution (app.services.transparency
        .acceptance)."""
        self.pending_acceptances = verify_acceptances(self, contribution_ids)

    def check_usage(self, window: UsageWindow, catch_up: CatchUp) -> None:
        """A usage window against the stored entries, before it is stored (see figures);
        `catch_up` fetches the entries written since the last were fetched."""
        check_usage(self, window, catch_up)

    def finish(self, catch_up: CatchUp = lambda: None) -> None:
        """Verify stored entries still pending, then check the registry's summary figures
        against the entries it reported."""
        with self.ctx.db.session() as s:
            rows = (
                s.execute(
                    select(RewardRecord)
                    .outerjoin(
                        LogProof,
                        (LogProof.registry_key == RewardRecord.registry_key)
                        & (LogProof.owner == RewardRecord.owner)
                        & (LogProof.cursor == RewardRecord.cursor),
                    )
                    .where(
                        RewardRecord.registry_key == self.registry_key,
                        RewardRecord.owner == self.owner,
                        LogProof.cursor.is_(None),
                    )
                )
                .scalars()
                .all()
            )
            fields = {r.cursor: record_fields(r) for r in rows}
        self.pending = 0
        if fields:
            self.store(self._prove(fields))
        check_summary(self, catch_up)
