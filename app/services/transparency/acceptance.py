"""Contribution acceptances in the log: the registry appends a leaf for every contribution it
accepts (`type` `acceptance`: contribution id, owner, the SHA-256 of the signed envelope and of
the manifest), in the transaction that accepts it. Each accepted contribution of the user must
be in the log with exactly what the catalogue submitted: its manifest digest, one of the
envelopes the catalogue signed for it, and the key that signed it. A contribution the checkpoint
does not hold yet stays pending (a registry that accepted it before it kept a log has no leaf);
its proof is stored (`LogProof` with cursor "acceptance:<id>") once verified."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import VerificationError
from app.services.transparency.failures import hashes, unb64
from app.signing.dsse import Envelope as Dsse
from app.store.models import Envelope, Item
from app.store.tlog_models import LogProof
from app.tlog import InclusionBatch, MalformedError, TlogError, leaf_hash

if TYPE_CHECKING:
    from app.services.transparency.session import SyncSession

ACCEPTANCE_PREFIX = "acceptance:"
BATCH = 1000


@dataclass(frozen=True)
class Submitted:
    """What the catalogue submitted as one contribution."""

    contribution_id: str
    manifest_sha256: str
    envelope_sha256s: frozenset[str]
    signers: frozenset[str]  # key fingerprints of those envelopes


def after_prefix(prefix: str) -> str:
    """The least string above every string that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def acceptance_cursor(contribution_id: str) -> str:
    return ACCEPTANCE_PREFIX + contribution_id


def submitted(s: Session, contribution_ids: Sequence[str]) -> dict[str, Submitted]:
    """What the catalogue holds for each of `contribution_ids` (accepted catalogue items)."""
    out: dict[str, Submitted] = {}
    ids = list(contribution_ids)
    for i in range(0, len(ids), 500):
        items = s.execute(
            select(Item.id, Item.registry_id, Item.manifest_digest).where(
                Item.registry_id.in_(ids[i : i + 500]), Item.state == "accepted"
            )
        ).all()
        by_item = {iid: (str(rid), digest) for iid, rid, digest in items}
        envs: dict[int, list[tuple[str, str]]] = {}
        for iid, keyid, env in s.execute(
            select(Envelope.item_id, Envelope.keyid, Envelope.envelope).where(
                Envelope.item_id.in_(list(by_item))
            )
        ):
            try:
                digest = hashlib.sha256(Dsse.from_dict(env).to_json()).hexdigest()
            except VerificationError:
                continue
            envs.setdefault(iid, []).append((digest, keyid))
        for iid, (rid, digest) in by_item.items():
            mine = envs.get(iid, [])
            out[rid] = Submitted(
                rid, digest, frozenset(d for d, _k in mine), frozenset(k for _d, k in mine)
            )
    return out


def acceptance_mismatch(leaf: bytes, sub: Submitted, owner: str) -> str | None:
    """Why the logged acceptance is not what the catalogue submitted (None: it is)."""
    try:
        obj = json.loads(leaf)
    except (ValueError, UnicodeDecodeError):
        return "the logged leaf is not JSON"
    if not isinstance(obj, dict):
        return "the logged leaf is not a JSON object"
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical.encode() != leaf:
        return "the logged leaf is not canonical JSON"
    if obj.get("type") != "acceptance" or obj.get("contributionId") != sub.contribution_id:
        return f"the logged leaf is not the acceptance of {sub.contribution_id}"
    if obj.get("manifestSha256") != sub.manifest_sha256:
        return (
            f"the log says manifest {str(obj.get('manifestSha256'))[:64]}, the catalogue "
            f"submitted {sub.manifest_sha256}"
        )
    if obj.get("envelopeSha256") not in sub.envelope_sha256s:
        return (
            f"the log says envelope {str(obj.get('envelopeSha256'))[:64]}, not one the catalogue "
            "signed"
        )
    if obj.get("owner") not in sub.signers | {owner}:
        return f"the log names owner {str(obj.get('owner'))[:64]}, not your key"
    return None


def verify_acceptances(sync: SyncSession, contribution_ids: Sequence[str]) -> int:
    """Verify and store the acceptance leaf of each accepted contribution not verified yet;
    the number still pending. A wrong leaf or proof fails the sync."""
    cp = sync.checkpoint
    assert cp is not None
    with sync.ctx.db.session() as s:
        done = set(
            s.scalars(
                select(LogProof.cursor).where(
                    LogProof.scope == sync.scope,
                    # a range on the primary key's index (LIKE would read every proof row)
                    LogProof.cursor >= ACCEPTANCE_PREFIX,
                    LogProof.cursor < after_prefix(ACCEPTANCE_PREFIX),
                )
            )
        )
        todo = [c for c in contribution_ids if acceptance_cursor(c) not in done]
        facts = submitted(s, todo)
    todo = [c for c in todo if c in facts]
    if not todo or not cp.size:
        return len(todo)
    batch = InclusionBatch(cp.size, cp.root)
    proven: list[LogProof] = []
    for i in range(0, len(todo), BATCH):
        ids = todo[i : i + BATCH]
        body = sync.client.http.json(
            "POST",
            "/v1/log/proof/inclusion",
            auth=False,
            json={"contributionIds": ids, "treeSize": cp.size},
        )
        proofs = body.get("proofs")
        if not isinstance(proofs, list):
            raise MalformedError("the inclusion proofs answer has no list of proofs")
        for p in proofs:
            if not isinstance(p, dict) or p.get("entryId") not in ids:
                raise MalformedError("an inclusion proof for an acceptance that was not asked")
            cid = str(p["entryId"])
            idx = p.get("leafIndex")
            leaf = unb64(p.get("leaf"), "leaf")
            path = hashes(p.get("proof"), "inclusion proof")
            sub = facts[cid]
            evidence: dict[str, Any] = {
                "checkpoint": sync.note.decode(),
                "contributionId": cid,
                "leafIndex": idx,
                "leaf": p.get("leaf"),
                "proof": p.get("proof"),
                "submitted": {
                    "manifestSha256": sub.manifest_sha256,
                    "envelopeSha256": sorted(sub.envelope_sha256s),
                },
            }
            try:
                if not isinstance(idx, int):
                    raise MalformedError("leafIndex is not an integer")
                batch.verify(idx, leaf_hash(leaf), path)
            except TlogError as exc:
                sync.fail(
                    "acceptance",
                    f"the acceptance of contribution {cid} is not in the log: {exc}",
                    evidence,
                )
            why = acceptance_mismatch(leaf, sub, sync.owner)
            if why is not None:
                sync.fail("acceptance", f"the acceptance of contribution {cid}: {why}", evidence)
            proven.append(
                LogProof(
                    scope=sync.scope, cursor=acceptance_cursor(cid),
                    leaf_index=idx, tree_size=cp.size, leaf=leaf, proof=b"".join(path),
                )
            )  # fmt: skip
    sync.store(proven)
    return len(todo) - len(proven)
