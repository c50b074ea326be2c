"""POST /v1/log/leaves: each entry's leaf index and leaf bytes, which hash to the leaf hash in
the served level-0 tile at that index, the tiles verifying against the signed checkpoint (what
the app checks instead of one inclusion proof per entry)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.tlog import Verifier, leaf_hash, open_checkpoint, tile_path
from app.tlog.tileset import TileSet
from tests.registry.test_translog import _usage
from tests.support.usage_data import UsageWorld, usage_world


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(db_url, tmp_path) as w:
        yield w


def test_leaves_are_the_ones_in_the_tiles_of_the_checkpoint(world: UsageWorld) -> None:
    _usage(world, "e", 5)
    a, _b = world.contributors
    items = world.client.get("/v1/me/rewards", headers=a.headers).json()["items"]
    assert items
    health = world.client.get("/v1/health").json()
    cp, _ = open_checkpoint(
        world.client.get("/v1/log/checkpoint").content, Verifier.from_vkey(health["logKey"])
    )
    ids = [i["cursor"] for i in items]
    r = world.client.post("/v1/log/leaves", json={"entryIds": [*ids, "999999"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["treeSize"] == cp.size and body["missing"] == ["999999"]
    assert sorted(x["entryId"] for x in body["leaves"]) == sorted(ids)
    proofs = world.client.post(
        "/v1/log/proof/inclusion", json={"entryIds": ids, "treeSize": cp.size}
    ).json()["proofs"]
    same = {p["entryId"]: (p["leafIndex"], p["leaf"]) for p in proofs}
    assert {x["entryId"]: (x["leafIndex"], x["leaf"]) for x in body["leaves"]} == same

    def fetch(need: list[tuple[int, int, int]]) -> dict[tuple[int, int, int], bytes]:
        out = {}
        for level, index, width in need:
            t = world.client.get("/v1/log/" + tile_path(level, index, width))
            assert t.status_code == 200, t.text
            out[(level, index, width)] = t.content
        return out

    tiles = TileSet(cp.size, cp.root)
    tiles.ensure([x["leafIndex"] for x in body["leaves"]], fetch)
    for x in body["leaves"]:
        assert tiles.leaf_hash_at(x["leafIndex"]) == leaf_hash(base64.b64decode(x["leaf"]))


def test_leaves_refuses_what_is_not_an_entry_id(world: UsageWorld) -> None:
    bad = world.client.post("/v1/log/leaves", json={"entryIds": ["12a"]})
    assert bad.status_code == 422
    big = world.client.post("/v1/log/leaves", json={"entryIds": ["1"] * 10_001})
    assert big.status_code == 422
    future = world.client.post("/v1/log/leaves", json={"entryIds": ["1"], "treeSize": 10**9})
    assert future.status_code == 404
