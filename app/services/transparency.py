"""Verify what a registry reports against its transparency log, and keep the evidence.

A registry that serves a log names its origin and verifier key in GET /v1/health. The first
time the app meets an origin it pins that key (trust on first use; `contributor-desk log-key
--set VKEY` pins one out of band instead). From then on:

- `check_pin` (every time the registry is learned): the key it names must be the pinned one;
- `LogSync` (every rewards sync): the checkpoint must be signed by the pinned key, consistent
  with the last checkpoint stored (same root at the same size; a consistency proof to a larger
  size; never a smaller size), every new ledger entry of the user must be in it (inclusion
  proof) with exactly the fields the registry reported, and the registry's summary figures
  must add up to the entries it reported;
- `audit` re-verifies everything stored, offline: every checkpoint's signature and the chain
  of consistency proofs between them, every entry's inclusion proof and leaf.

On a failure nothing stored is changed: the failure is recorded with its evidence (the signed
checkpoints and proofs involved) and the sync stops with `LogVerificationFailed` (exit 4).
`export_evidence` writes that evidence as JSON; `compare` checks the stored checkpoints against
another contributor's export (split-view detection: two checkpoints of one size with different
roots, both signed by the log key, prove the log showed two histories).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.errors import UsageError
from app.registry_client.api import RegistryClient
from app.registry_client.http import ApiRefused
from app.registry_client.usage import RewardEntry
from app.services.context import ServiceContext
from app.store.rewards_models import RewardRecord
from app.store.tlog_models import LogCheckpoint, LogFailure, LogPin, LogProof
from app.tlog import (
    Checkpoint,
    InclusionBatch,
    MalformedError,
    TlogError,
    Verifier,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
)
from app.tlog.merkle import HASH_SIZE

EVIDENCE_FORMAT = "contributor-desk-log-evidence/1"
PROOF_BATCH = 1000
MAX_SUMMARY_PAGES = 100


class LogVerificationFailed(TlogError):
    """The registry's log does not back what it reports (exit code 4)."""


def key_fingerprint(v: Verifier) -> str:
    """A short fingerprint of a log key to compare by eye: SHA-256 of the key, 16 bytes."""
    digest = hashlib.sha256(bytes([0x01]) + v.public_key).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def vkey_fingerprint(vkey: str) -> str:
    """key_fingerprint of a log key given in the signed-note verifier-key format."""
    return key_fingerprint(Verifier.from_vkey(vkey))


def parse_log_identity(body: dict[str, Any]) -> Verifier | None:
    """The log key a health answer names (None if it names no log); malformed → TlogError."""
    vkey, origin = body.get("logKey"), body.get("logOrigin")
    if vkey is None and origin is None:
        return None
    if not isinstance(vkey, str) or not isinstance(origin, str):
        raise MalformedError("the registry's logKey / logOrigin are not strings")
    v = Verifier.from_vkey(vkey)
    if v.name != origin:
        raise MalformedError(f"the log key is named {v.name[:100]!r}, the log {origin[:100]!r}")
    return v


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise MalformedError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise MalformedError(f"{what} is not base64") from None


def _hashes(items: Any, what: str) -> list[bytes]:
    if not isinstance(items, list) or len(items) > 64:
        raise MalformedError(f"{what} is not a list of at most 64 hashes")
    out = [_unb64(h, what) for h in items]
    if any(len(h) != HASH_SIZE for h in out):
        raise MalformedError(f"{what} holds a hash that is not 32 bytes")
    return out


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


# ---- pins ------------------------------------------------------------------------------------


def pinned(ctx: ServiceContext, origin: str) -> LogPin | None:
    with ctx.db.session() as s:
        pin = s.get(LogPin, origin)
        if pin is not None:
            s.expunge(pin)
        return pin


def all_pins(ctx: ServiceContext) -> list[LogPin]:
    with ctx.db.session() as s:
        pins = list(s.scalars(select(LogPin).order_by(LogPin.origin)))
        for p in pins:
            s.expunge(p)
        return pins


def pin_key(ctx: ServiceContext, vkey: str, source: str = "user") -> Verifier:
    """Pin `vkey` (signed-note verifier key) for its origin, replacing any pin of it."""
    try:
        v = Verifier.from_vkey(vkey.strip())
    except MalformedError as exc:
        raise UsageError(
            f"not a log key: {exc}", hint="give the key as name+hash+key (GET /v1/health logKey)"
        ) from None
    with ctx.db.session() as s:
        pin = s.get(LogPin, v.name)
        if pin is None:
            s.add(LogPin(origin=v.name, vkey=v.vkey, source=source, pinned_at=datetime.now(UTC)))
        else:
            pin.vkey, pin.source, pin.pinned_at = v.vkey, source, datetime.now(UTC)
        s.commit()
    return v


def check_pin(ctx: ServiceContext, body: dict[str, Any]) -> Verifier | None:
    """The log key the registry names, checked against the pin for its origin (pinned now if
    this is the first contact). A different key is a verification failure."""
    served = parse_log_identity(body)
    if served is None:
        return None
    pin = pinned(ctx, served.name)
    if pin is None:
        pin_key(ctx, served.vkey, source="first-contact")
        return served
    if pin.vkey != served.vkey:
        trusted = Verifier.from_vkey(pin.vkey)
        _fail(
            ctx,
            pin.vkey,
            "key",
            f"the registry's log key changed: pinned {key_fingerprint(trusted)}, it now names "
            f"{key_fingerprint(served)}",
            {"pinnedKey": pin.vkey, "servedKey": served.vkey},
            hint="if the registry announced a key rotation, pin the new key after checking it "
            "out of band: contributor-desk log-key --set NEW_KEY",
        )
    return served


def _fail(
    ctx: ServiceContext,
    registry_key: str,
    what: str,
    message: str,
    evidence: dict[str, Any],
    *,
    hint: str | None = None,
) -> NoReturn:
    """Record the failure with its evidence (a new row; nothing else changes) and raise."""
    with ctx.db.session() as s:
        s.add(
            LogFailure(
                registry_key=registry_key,
                at=datetime.now(UTC),
                what=what,
                message=message,
                evidence=json.dumps(evidence, sort_keys=True),
            )
        )
        s.commit()
    raise LogVerificationFailed(
        f"transparency log check failed ({what}): {message}",
        hint=hint
        or "nothing stored was changed; run contributor-desk audit --export FILE "
        "to keep the evidence",
    )


# ---- leaves ----------------------------------------------------------------------------------


def _at_z(value: datetime) -> str:
    v = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry_fields(
    cursor: str,
    event_id: str,
    contribution_id: str,
    model_id: str,
    method: str,
    amount: int,
    at: datetime,
    demo: bool,
) -> dict[str, Any]:
    return {
        "type": "ledger",
        "kind": "contributor",
        "id": int(cursor),
        "eventId": event_id,
        "contributionId": contribution_id,
        "modelId": model_id,
        "method": method,
        "amountMicro": amount,
        "at": _at_z(at),
        "demo": demo,
    }


def leaf_mismatch(leaf: bytes, fields: dict[str, Any], owner: str) -> str | None:
    """Why the logged leaf is not the entry the registry reported (None: it is). The leaf
    must be canonical JSON whose fields equal the reported ones and name the owner."""
    try:
        obj = json.loads(leaf)
    except (ValueError, UnicodeDecodeError):
        return "the logged leaf is not JSON"
    if not isinstance(obj, dict):
        return "the logged leaf is not a JSON object"
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical.encode() != leaf:
        return "the logged leaf is not canonical JSON"
    for k, v in {**fields, "owner": owner}.items():
        if obj.get(k) != v:
            return f"the registry reports {k} = {v!r}, its log says {obj.get(k)!r}"
    return None


# ---- sync ------------------------------------------------------------------------------------


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
    _seen: set[str] = field(default_factory=set)

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
        _fail(self.ctx, self.registry_key, what, message, evidence)

    def _last(self) -> LogCheckpoint | None:
        with self.ctx.db.session() as s:
            row = s.scalar(
                select(LogCheckpoint)
                .where(LogCheckpoint.registry_key == self.registry_key)
                .order_by(LogCheckpoint.size.desc())
                .limit(1)
            )
            if row is not None:
                s.expunge(row)
            return row

    def begin(self) -> None:
        resp = self.client.http.request("GET", "/v1/log/checkpoint", auth=False)
        note = resp.content
        try:
            cp, _ = open_checkpoint(note, self.verifier, self.verifier.name)
        except TlogError as exc:
            self.fail(
                "signature",
                f"the checkpoint is not signed by the pinned log key: {exc}",
                {
                    "servedCheckpoint": note.decode("utf-8", "replace"),
                    "pinnedKey": self.verifier.vkey,
                },
            )
            raise AssertionError("unreachable") from exc
        last = self._last()
        consistency: list[bytes] = []
        if last is not None:
            old = last.note.decode()
            new = note.decode()
            if cp.size < last.size:
                self.fail(
                    "rollback",
                    f"the registry serves a tree of {cp.size} entries after it signed one of "
                    f"{last.size}: an old checkpoint replayed or a truncated log",
                    {"checkpoints": [old, new]},
                )
            if cp.size == last.size and cp.root != last.root:
                self.fail(
                    "fork",
                    f"two different trees of size {cp.size}, both signed by the log key",
                    {"checkpoints": [old, new]},
                )
            if cp.size > last.size:
                body = self.client.http.json(
                    "GET",
                    "/v1/log/proof/consistency",
                    auth=False,
                    params={"from": last.size, "to": cp.size},
                )
                try:
                    consistency = _hashes(body.get("proof"), "consistency proof")
                    verify_consistency(last.size, cp.size, last.root, cp.root, consistency)
                except TlogError as exc:
                    self.fail(
                        "consistency",
                        f"the tree of size {cp.size} does not extend the one of size "
                        f"{last.size} stored before: {exc}",
                        {"checkpoints": [old, new], "consistencyProof": body.get("proof")},
                    )
        self.checkpoint, self.note = cp, note
        if last is None or cp.size > last.size:
            with self.ctx.db.session() as s:
                s.add(
                    LogCheckpoint(
                        registry_key=self.registry_key,
                        size=cp.size,
                        root=cp.root,
                        note=note,
                        prev_size=None if last is None else last.size,
                        consistency=b"".join(consistency),
                        fetched_at=datetime.now(UTC),
                    )
                )
                s.commit()

    def verify(self, items: Sequence[RewardEntry]) -> list[LogProof]:
        """Inclusion proofs of the reported entries, verified (not stored yet); entries the
        log does not hold yet stay pending. A wrong entry or proof fails the sync."""
        fields = {
            e.cursor: _entry_fields(
                e.cursor, e.event_id, e.contribution_id, e.model_id, e.method,
                e.amount_micro, e.at, e.demo,
            )
            for e in items
        }  # fmt: skip
        return self._prove(fields)

    def _prove(self, fields: dict[str, dict[str, Any]]) -> list[LogProof]:
        cp = self.checkpoint
        assert cp is not None
        out: list[LogProof] = []
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
                leaf = _unb64(p.get("leaf"), "leaf")
                path = _hashes(p.get("proof"), "inclusion proof")
                evidence = {
                    "checkpoint": self.note.decode(),
                    "entryId": cursor,
                    "leafIndex": idx,
                    "leaf": p.get("leaf"),
                    "proof": p.get("proof"),
                    "reported": fields[cursor],
                }
                try:
                    if not isinstance(idx, int) or batch is None:
                        raise MalformedError("leafIndex is not an integer")
                    batch.verify(idx, leaf_hash(leaf), path)
                except TlogError as exc:
                    self.fail("inclusion", f"ledger entry {cursor} is not in the log: {exc}",
                              evidence)  # fmt: skip
                why = leaf_mismatch(leaf, fields[cursor], self.owner)
                if why is not None:
                    self.fail("entry", f"ledger entry {cursor}: {why}", evidence)
                got.add(cursor)
                out.append(
                    LogProof(
                        registry_key=self.registry_key, owner=self.owner, cursor=cursor,
                        leaf_index=idx, tree_size=cp.size, leaf=leaf, proof=b"".join(path),
                    )
                )  # fmt: skip
            self.pending += len(set(ids) - got)
        self.verified += len(out)
        return out

    def store(self, proofs: Iterable[LogProof]) -> None:
        with self.ctx.db.session() as s:
            for p in proofs:
                if s.get(LogProof, (p.registry_key, p.owner, p.cursor)) is None:
                    s.add(p)
            s.commit()

    def finish(self) -> None:
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
            fields = {r.cursor: _record_fields(r) for r in rows}
        self.pending = 0
        if fields:
            self.store(self._prove(fields))
        self._check_summary()

    def _check_summary(self) -> None:
        with self.ctx.db.session() as s:
            per = dict(
                s.execute(
                    select(RewardRecord.contribution_id, func.sum(RewardRecord.amount_micro))
                    .where(
                        RewardRecord.registry_key == self.registry_key,
                        RewardRecord.owner == self.owner,
                    )
                    .group_by(RewardRecord.contribution_id)
                ).all()
            )
        entries_total = sum(int(v) for v in per.values())
        after: str | None = None
        for page in range(MAX_SUMMARY_PAGES):
            params: dict[str, Any] = {"limit": 1000}
            if after is not None:
                params["after"] = after
            try:
                body = self.client.http.json("GET", "/v1/me/summary", params=params)
            except ApiRefused:
                return  # the registry has no summary for this key
            if page == 0 and body.get("rewardMicro") != entries_total:
                self.fail(
                    "summary",
                    f"the registry's total is {body.get('rewardMicro')} micro-units, its ledger "
                    f"entries add up to {entries_total}",
                    {"checkpoint": self.note.decode(), "entriesRewardMicro": entries_total,
                     "summaryRewardMicro": body.get("rewardMicro")},
                )  # fmt: skip
            contributions = body.get("contributions") or {}
            for c in contributions.get("items") or []:
                cid, reward = c.get("contributionId"), c.get("rewardMicro")
                if reward != int(per.get(cid, 0)):
                    self.fail(
                        "summary",
                        f"the registry's total for contribution {cid} is {reward} micro-units, "
                        f"its ledger entries add up to {int(per.get(cid, 0))}",
                        {"checkpoint": self.note.decode(), "contributionId": cid,
                         "summaryRewardMicro": reward},
                    )  # fmt: skip
            if not contributions.get("hasMore"):
                return
            after = contributions.get("nextCursor")


def _record_fields(r: RewardRecord) -> dict[str, Any]:
    return _entry_fields(
        r.cursor, r.event_id, r.contribution_id, r.model_id, r.method, int(r.amount_micro),
        r.at, bool(r.demo),
    )  # fmt: skip


# ---- audit, export, compare (offline) --------------------------------------------------------


@dataclass
class AuditReport:
    registries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(r["failures"] for r in self.registries)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "registries": self.registries, "problems": self.problems}


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
                            c.prev_size, c.size, roots[c.prev_size], c.root, _split(c.consistency)
                        )
                except (TlogError, KeyError) as exc:
                    problems.append(f"checkpoint of size {c.size}: {exc}")
                roots[c.size] = c.root
            records = {
                r.cursor: r
                for r in s.scalars(select(RewardRecord).where(RewardRecord.registry_key == key))
            }
            batches: dict[int, InclusionBatch] = {}
            proofs = list(s.scalars(select(LogProof).where(LogProof.registry_key == key)))
            for p in proofs:
                try:
                    root = roots.get(p.tree_size)
                    if root is None:
                        raise TlogError(f"no stored checkpoint of size {p.tree_size}")
                    b = batches.get(p.tree_size)
                    if b is None:
                        b = batches[p.tree_size] = InclusionBatch(p.tree_size, root)
                    b.verify(p.leaf_index, leaf_hash(p.leaf), _split(p.proof))
                    r = records.get(p.cursor)
                    if r is None:
                        raise TlogError("the proven entry is not stored")
                    why = leaf_mismatch(p.leaf, _record_fields(r), p.owner)
                    if why is not None:
                        raise TlogError(why)
                except TlogError as exc:
                    problems.append(f"ledger entry {p.cursor}: {exc}")
            failures = [
                {"at": f.at.isoformat(), "what": f.what, "message": f.message}
                for f in s.scalars(select(LogFailure).where(LogFailure.registry_key == key))
            ]
            pending = len(set(records) - {p.cursor for p in proofs})
            report.registries.append(
                {
                    "registryKey": key,
                    "checkpoints": len(cps),
                    "treeSize": cps[-1].size if cps else 0,
                    "verifiedEntries": len(proofs),
                    "pendingEntries": pending,
                    "problems": problems,
                    "failures": failures,
                }
            )
            report.problems.extend(f"{key[:40]}…: {p}" for p in problems)
    return report


def export_evidence(ctx: ServiceContext, path: Path) -> dict[str, Any]:
    """Write the stored checkpoints (signed notes), consistency proofs and every recorded
    failure with its evidence as JSON; what any tlog tool can check."""
    with ctx.db.session() as s:
        logs = []
        for key in sorted(set(s.scalars(select(LogCheckpoint.registry_key).distinct()))):
            cps = list(
                s.scalars(
                    select(LogCheckpoint)
                    .where(LogCheckpoint.registry_key == key)
                    .order_by(LogCheckpoint.size)
                )
            )
            logs.append(
                {
                    "logKey": key,
                    "checkpoints": [
                        {
                            "note": c.note.decode(),
                            "size": c.size,
                            "root": _b64(c.root),
                            "consistencyFrom": c.prev_size,
                            "consistencyProof": [_b64(h) for h in _split(c.consistency)],
                        }
                        for c in cps
                    ],
                    "failures": [
                        {
                            "at": f.at.isoformat(),
                            "what": f.what,
                            "message": f.message,
                            "evidence": json.loads(f.evidence),
                        }
                        for f in s.scalars(select(LogFailure).where(LogFailure.registry_key == key))
                    ],  # fmt: skip
                }
            )
    doc = {"format": EVIDENCE_FORMAT, "exportedAt": datetime.now(UTC).isoformat(), "logs": logs}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return doc


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


# ---- status (what the Rewards page shows) ----------------------------------------------------


@dataclass(frozen=True)
class LogStatus:
    """How far the stored rewards of one registry key and owner are verified."""

    checkpoint_size: int | None  # the latest stored (verified) checkpoint
    checkpoint_at: datetime | None
    verified: int  # entries with a verified inclusion proof
    pending: int  # stored entries without one yet
    failure: str | None  # the last failure, if no checkpoint was verified after it
    failed_contributions: frozenset[str]  # named by that failure's evidence
    per_contribution: dict[str, tuple[int, int]]  # contribution id → (verified, pending)

    def contribution_state(self, contribution_id: str) -> str:
        """'failed', 'pending' or 'verified' for one contribution's entries."""
        if contribution_id in self.failed_contributions:
            return "failed"
        verified, pending = self.per_contribution.get(contribution_id, (0, 0))
        return "pending" if pending or not verified else "verified"


def log_status(ctx: ServiceContext, registry_key: str, owner: str) -> LogStatus | None:
    """The verification state of what is stored for `registry_key` (None: that registry has
    no log, so nothing is verified)."""
    with ctx.db.session() as s:
        last = s.scalar(
            select(LogCheckpoint)
            .where(LogCheckpoint.registry_key == registry_key)
            .order_by(LogCheckpoint.size.desc())
            .limit(1)
        )
        fail = s.scalar(
            select(LogFailure)
            .where(LogFailure.registry_key == registry_key)
            .order_by(LogFailure.id.desc())
            .limit(1)
        )
        if last is None and fail is None:
            return None
        rows = s.execute(
            select(RewardRecord.contribution_id, LogProof.cursor)
            .outerjoin(
                LogProof,
                (LogProof.registry_key == RewardRecord.registry_key)
                & (LogProof.owner == RewardRecord.owner)
                & (LogProof.cursor == RewardRecord.cursor),
            )
            .where(RewardRecord.registry_key == registry_key, RewardRecord.owner == owner)
        ).all()
        per: dict[str, list[int]] = {}
        for cid, proven in rows:
            counts = per.setdefault(cid, [0, 0])
            counts[0 if proven is not None else 1] += 1
        failure: str | None = None
        failed: set[str] = set()
        if fail is not None and (last is None or _aware(fail.at) >= _aware(last.fetched_at)):
            failure = f"{fail.message} ({fail.what}, {_aware(fail.at):%d %b %Y %H:%M} UTC)"
            reported = json.loads(fail.evidence).get("reported")
            if isinstance(reported, dict) and isinstance(reported.get("contributionId"), str):
                failed.add(reported["contributionId"])
        return LogStatus(
            checkpoint_size=None if last is None else last.size,
            checkpoint_at=None if last is None else _aware(last.fetched_at),
            verified=sum(v for v, _ in per.values()),
            pending=sum(p for _, p in per.values()),
            failure=failure,
            failed_contributions=frozenset(failed),
            per_contribution={c: (v, p) for c, (v, p) in per.items()},
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
