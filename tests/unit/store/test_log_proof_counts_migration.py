"""Migration 0011: each owner's count of ledger proofs, filled from the stored proofs and kept
by triggers (an insert that keeps the stored row counts nothing, acceptance proofs never
count, a deleted proof is taken off); downgrade drops the table and its triggers."""

from __future__ import annotations

from pathlib import Path

from app.store.db import Database
from app.store.tlog_models import ledger_proofs
from tests.support.catalogue_db import at_revision, rows, upgraded, write

_PROOF = "INSERT INTO log_proofs VALUES (?, ?, ?, 1, 9, x'7b7d', x'') ON CONFLICT DO NOTHING"


def _counts(path: Path) -> list[tuple[object, ...]]:
    return rows(path, "SELECT * FROM log_proof_counts ORDER BY owner")


def test_0011_counts_the_stored_ledger_proofs_and_keeps_counting(tmp_path: Path) -> None:
    path = at_revision(tmp_path, "0010")
    write(path, _PROOF, ("k", "a", "1"), ("k", "a", "2"), ("k", "a", "acceptance:c_1"),
          ("k", "b", "7"))  # fmt: skip

    upgraded(tmp_path, "0011")
    assert _counts(path) == [("k", "a", 2), ("k", "b", 1)]
    # one new, one already stored (kept, not counted), one acceptance, one ledger id past
    # the acceptance range, one for an owner not counted before
    added = write(path, _PROOF, ("k", "a", "3"), ("k", "a", "1"), ("k", "a", "acceptance:c_2"),
                  ("k", "a", "acceptance;"), ("k", "c", "9"))  # fmt: skip
    assert added == 4
    assert _counts(path) == [("k", "a", 4), ("k", "b", 1), ("k", "c", 1)]
    write(path, "DELETE FROM log_proofs WHERE owner = ? AND cursor = ?", ("a", "2"),
          ("a", "acceptance:c_1"))  # fmt: skip
    assert _counts(path) == [("k", "a", 3), ("k", "b", 1), ("k", "c", 1)]
    db = Database(tmp_path)  # upgrades to head (the counts per ledger scope since 0014)
    with db.session() as s:
        assert (ledger_proofs(s, "k", "a"), ledger_proofs(s, "k", "nobody")) == (3, 0)
    db.dispose()
    at_revision(tmp_path, "0010")
    assert (
        rows(
            path,
            "SELECT name FROM sqlite_master WHERE name LIKE 'log_proof%count%' OR type = 'trigger'",
        )
        == []
    )
    assert rows(path, "SELECT count(*) FROM log_proofs") == [(6,)]
