"""The optional reads a registry's health answer names: a list of short names; anything else
names none (the client then keeps to the reads every registry serves)."""

from __future__ import annotations

from typing import Any

import pytest

from app.services.registry_identity import MAX_READS, parse_reads


def test_the_names_listed_are_the_reads() -> None:
    assert parse_reads({"reads": ["usage-windows", "later-read"]}) == {
        "usage-windows",
        "later-read",
    }
    assert parse_reads({"status": "ok"}) == frozenset()  # an older registry names none


@pytest.mark.parametrize(
    "reads",
    ["usage-windows", {"usage-windows": True}, None, 7, [None, 3, ["usage-windows"], "x" * 65]],
)
def test_anything_but_a_list_of_short_names_names_no_read(reads: Any) -> None:
    assert "usage-windows" not in parse_reads({"reads": reads})
    assert all(isinstance(r, str) and len(r) <= 64 for r in parse_reads({"reads": reads}))


def test_a_long_list_is_read_only_so_far() -> None:
    many = [f"read-{n}" for n in range(10_000)]
    assert len(parse_reads({"reads": many})) == MAX_READS
