"""GET /v1/log/tile/...: full tiles and entry bundles are immutable, so they are served from a
bounded in-memory cache (no database read) with a year's Cache-Control; partial tiles at the
right edge are read each time and cached by clients for a minute only."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.tlog import Verifier, open_checkpoint, tile_path
from app.tlog.tiles import TILE_WIDTH, TileReader, entries_path
from registry import translog
from registry.routes.log import IMMUTABLE, TileCache


def _statements(app: FastAPI) -> list[str]:
    """The log's statements the app's engine runs from now on (not the rate limiter's: on
    PostgreSQL its buckets are shared by the workers in a table)."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if "rate_limit_buckets" not in statement:
            seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    return seen


def _append(app: FastAPI, n: int) -> int:
    with app.state.sessions() as s:
        leaves = [
            translog.Leaf(translog.KIND_ACCEPTANCE, f"c{i}", b"leaf %d" % i) for i in range(n)
        ]
        translog.append(s, leaves)
        s.commit()
        return translog.tree_size(s)


def test_full_tiles_come_from_the_cache_partial_ones_from_the_database(
    client: TestClient, app: FastAPI
) -> None:
    size = _append(app, TILE_WIDTH + 44)
    seen = _statements(app)
    paths = [tile_path(0, 0), entries_path(0)]
    first = {p: client.get("/v1/log/" + p) for p in paths}
    for p, r in first.items():
        assert r.status_code == 200, (p, r.text)
        assert r.headers["cache-control"] == IMMUTABLE
    assert seen, "the first read of each full tile is a database read"
    seen.clear()
    for p in paths:
        again = client.get("/v1/log/" + p)
        assert again.status_code == 200 and again.content == first[p].content
        assert again.headers["cache-control"] == IMMUTABLE
    assert seen == []
    partial = tile_path(0, 1, size - TILE_WIDTH)
    for _ in range(2):
        seen.clear()
        r = client.get("/v1/log/" + partial)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=60"
        assert seen, "a partial tile is read from the database every time"
    # not in the tree yet: 404, and nothing cached for it
    assert client.get("/v1/log/" + tile_path(0, 2)).status_code == 404
    assert len(app.state.tile_cache) == 2
    # what is served (from the cache or not) verifies against the signed checkpoint
    key = client.get("/v1/health").json()["logKey"]
    cp, _ = open_checkpoint(client.get("/v1/log/checkpoint").content, Verifier.from_vkey(key))
    assert cp.size == size

    def fetch(path: str) -> bytes:
        r = client.get("/v1/log/" + path)
        assert r.status_code == 200, (path, r.text)
        return r.content

    reader = TileReader(fetch, cp.size, cp.root)
    reader.verify_root()
    assert reader.entries(1)[1] == b"leaf %d" % (TILE_WIDTH + 1)


def test_tile_cache_is_bounded_in_bytes_and_drops_the_least_recently_used() -> None:
    cache = TileCache(max_bytes=3 * 8192)
    for i in range(3):
        cache.put((0, i), bytes(8192))
    assert cache.get((0, 0)) is not None  # 0 is now the most recently used
    cache.put((0, 3), bytes(8192))
    assert cache.get((0, 1)) is None
    assert [cache.get((0, i)) is not None for i in (0, 2, 3)] == [True, True, True]
    assert cache.bytes == 3 * 8192 and len(cache) == 3
    cache.put((None, 9), bytes(4 * 8192))  # larger than the whole cache: not kept
    assert cache.get((None, 9)) is None and cache.bytes == 3 * 8192


def test_a_missed_full_tile_brings_the_next_full_ones_of_its_level(
    client: TestClient, app: FastAPI
) -> None:
    size = _append(app, 3 * TILE_WIDTH + 10)
    with app.state.sessions() as s:
        stored = {i: translog.hash_tile(s, size, 0, i, TILE_WIDTH) for i in (1, 2)}
    seen = _statements(app)
    first = client.get("/v1/log/" + tile_path(0, 0))
    assert first.status_code == 200 and seen
    seen.clear()
    for index in (1, 2):  # read along with tile 0, in full, byte for byte what is stored
        r = client.get("/v1/log/" + tile_path(0, index))
        assert r.status_code == 200 and r.headers["cache-control"] == IMMUTABLE
        assert r.content == stored[index] and len(r.content) == TILE_WIDTH * 32
    assert seen == []
    # the partial tile at the edge was not read ahead: it is read (and not cached) on request
    assert len(app.state.tile_cache) == 3
    seen.clear()
    assert client.get("/v1/log/" + tile_path(0, 3, 10)).status_code == 200
    assert seen and len(app.state.tile_cache) == 3
