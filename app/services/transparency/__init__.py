"""Verify what a registry reports against its transparency log, and keep the evidence.

A registry that serves a log names its origin and verifier key in GET /v1/health. The first
time the app meets an origin it pins that key (trust on first use; `contributor-desk log-key
--set VKEY` pins one out of band instead). From then on:

- `check_pin` (every time the registry is learned): the key it names must be the pinned one;
- `LogSync` (every rewards sync): the checkpoint must be signed by the pinned key, consistent
  with the last checkpoint stored (same root at the same size; a consistency proof to a larger
  size; never a smaller size), every new ledger entry of the user must be in it with exactly
  the fields the registry reported (its leaf hashes to the hash at its index in a level-0 hash
  tile verified against the checkpoint, or, for an entry alone in its tile, an inclusion
  proof), and the registry's summary figures must add up to the entries it reported;
- `audit` re-verifies everything stored, offline: every checkpoint's signature and the chain
  of consistency proofs between them, the stored tiles, every entry's inclusion and leaf.

On a failure nothing stored is changed: the failure is recorded with its evidence (the signed
checkpoints and proofs involved) and the sync stops with `LogVerificationFailed` (exit 4).
`export_evidence` writes that evidence as JSON; `compare` checks the stored checkpoints against
another contributor's export (split-view detection: two checkpoints of one size with different
roots, both signed by the log key, prove the log showed two histories).

Modules: `pins` (log keys), `checkpoints` (signature and consistency), `sync` (`LogSync`:
entry inclusion), `figures` (reported figures against the entries), `failures` (recording,
`export_evidence`, `acknowledge_failures`), `audit` (`audit`, `compare`), `status`
(`log_status`, for the Rewards page).
"""

from __future__ import annotations

from app.services.transparency.audit import AuditReport, Comparison, audit, compare
from app.services.transparency.failures import (
    EVIDENCE_FORMAT,
    LogVerificationFailed,
    acknowledge_failures,
    export_evidence,
)
from app.services.transparency.leaves import leaf_mismatch
from app.services.transparency.pins import (
    all_pins,
    check_pin,
    key_fingerprint,
    parse_log_identity,
    pin_key,
    pinned,
    vkey_fingerprint,
)
from app.services.transparency.status import LogStatus, log_status
from app.services.transparency.sync import PROOF_BATCH, LogSync

__all__ = [
    "EVIDENCE_FORMAT",
    "PROOF_BATCH",
    "AuditReport",
    "Comparison",
    "LogStatus",
    "LogSync",
    "LogVerificationFailed",
    "acknowledge_failures",
    "all_pins",
    "audit",
    "check_pin",
    "compare",
    "export_evidence",
    "key_fingerprint",
    "leaf_mismatch",
    "log_status",
    "parse_log_identity",
    "pin_key",
    "pinned",
    "vkey_fingerprint",
]
