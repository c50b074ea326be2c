"""Migration 0010: the verified hash tiles table; inclusion proofs stored before it keep their
audit path (and `audit` still verifies entries by it); the events count of every stored leaf is
filed by contribution and day; downgrade drops only the new tables."""

from __future__ import annotations

from pathlib import Path

from tests.support.catalogue_db import at_revision, rows, upgraded, write


def test_0010_adds_the_tiles_and_keeps_stored_proofs(tmp_path: Path) -> None:
    path = at_revision(tmp_path, "0009")
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'log_tiles'") == []
    write(
        path,
        "INSERT INTO log_proofs VALUES ('k', 'o', '17', 3, 9, ?, ?)",
        (b'{"id":17}', bytes(range(64))),
    )
    write(
        path,
        "INSERT INTO reward_entries (registry_key, owner, cursor, event_id, "
        "contribution_id, model_id, method, amount_micro, at, demo) "
        "VALUES ('k', 'o', '18', 's40', 'c_1', 'm', 'influence', 5, "
        "'2026-12-01 09:00:00.000000', 0)",
    )
    write(path, "INSERT INTO log_proofs VALUES ('k', 'o', '18', 4, 9, ?, x'')", (b'{"events":7}',))

    upgraded(tmp_path, "0010")
    assert rows(path, "SELECT cursor, leaf_index, tree_size, proof FROM log_proofs") == [
        ("17", 3, 9, bytes(range(64))),
        ("18", 4, 9, b""),
    ]
    # the events count of each stored leaf, filed by contribution and day
    assert rows(path, "SELECT * FROM log_leaf_events") == [
        ("k", "o", "c_1", "2026-12-01", "m", "influence", "18", 40, 7)
    ]
    write(path, "INSERT INTO log_tiles VALUES ('k', 0, 0, 9, 9, ?)", (bytes(9 * 32),))
    assert rows(path, "SELECT level, idx, width, tree_size FROM log_tiles") == [(0, 0, 9, 9)]

    at_revision(tmp_path, "0009")
    assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'log_tiles'") == []
    assert len(rows(path, "SELECT * FROM log_proofs")) == 2
