"""The registry's transparency log: ledger entries become leaves, served as tlog-tiles with
signed checkpoints, and the JSON proofs verify against them (app.tlog on the client side)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.tlog import (
    SignatureError,
    TileNotFound,
    TileReader,
    Verifier,
    leaf_hash,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from app.tlog.merkle import root_of
from registry import translog
from registry.cli import main as registry_main
from registry.db.session import make_engine, make_sessionmaker
from tests.support.registry_actors import Contributor
from tests.support.usage_data import UsageWorld, event, usage_world

DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[UsageWorld]:
    with usage_world(db_url, tmp_path) as w:
        yield w


def _checkpoint(world: UsageWorld) -> tuple[int, bytes, bytes]:
    health = world.client.get("/v1/health").json()
    verifier = Verifier.from_vkey(health["logKey"])
    assert verifier.name == health["logOrigin"]
    r = world.client.get("/v1/log/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    cp, _ = open_checkpoint(r.content, verifier, health["logOrigin"])
    return cp.size, cp.root, r.content


def _usage(world: UsageWorld, tag: str, days: int) -> None:
    a, b = world.contributors
    ca, cb = world.ids_of(a)[0], world.ids_of(b)[0]
    events = [
        event(f"{tag}{d}", "test-model", [(ca, 3, "influence"), (cb, 1, "retrieval")],
              fee_micro=1000 + d, at=DAY + timedelta(days=d))
        for d in range(days)
    ]  # fmt: skip
    assert len(world.post_usage(events).json()["accepted"]) == days


def test_ledger_entries_are_leaves_with_proofs(world: UsageWorld) -> None:
    size0, root0, _ = _checkpoint(world)
    _usage(world, "e", 5)
    size1, root1, note1 = _checkpoint(world)
    with world.sessions() as s:
        ledger_rows = s.execute(text("SELECT count(*) FROM ledger")).scalar_one()
    assert size1 == size0 + ledger_rows  # every ledger entry (contributor and protocol) logged
    a = world.contributors[0]
    items = world.client.get("/v1/me/rewards", headers=a.headers).json()["items"]
    assert items
    r = world.client.post(
        "/v1/log/proof/inclusion",
        json={"entryIds": [i["cursor"] for i in items], "treeSize": size1},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["checkpoint"] == note1.decode()
    assert body["missing"] == []
    by_id = {p["entryId"]: p for p in body["proofs"]}
    for item in items:
        p = by_id[item["cursor"]]
        leaf = base64.b64decode(p["leaf"])
        proof = [base64.b64decode(h) for h in p["proof"]]
        verify_inclusion(p["leafIndex"], size1, leaf_hash(leaf), proof, root1)
        obj = json.loads(leaf)
        assert leaf == translog.canonical_json(obj)
        assert obj["type"] == "ledger" and obj["kind"] == "contributor"
        assert str(obj["id"]) == item["cursor"]
        assert obj["amountMicro"] == item["amountMicro"]
        assert obj["contributionId"] == item["contributionId"]
        assert obj["owner"] == a.fingerprint
        assert len(obj["usageDigest"]) == 64 and obj["events"] >= 1
    # one entry by GET, and its proof against the same size
    one = world.client.get(
        "/v1/log/proof/inclusion", params={"entryId": items[0]["cursor"], "treeSize": size1}
    )
    assert one.status_code == 200 and one.json() == by_id[items[0]["cursor"]]
    unknown = world.client.get("/v1/log/proof/inclusion", params={"entryId": "999999"})
    assert unknown.status_code == 404

    _usage(world, "f", 3)
    size2, root2, _ = _checkpoint(world)
    assert size2 > size1
    c = world.client.get("/v1/log/proof/consistency", params={"from": size1, "to": size2})
    assert c.status_code == 200, c.text
    proof = [base64.b64decode(h) for h in c.json()["proof"]]
    verify_consistency(size1, size2, root1, root2, proof)
    too_big = world.client.get("/v1/log/proof/consistency", params={"from": 1, "to": size2 + 1})
    assert too_big.status_code == 404

    # a tlog-tiles client reads the same leaves from the tiles and bundles
    def fetch(path: str) -> bytes:
        resp = world.client.get("/v1/log/" + path)
        if resp.status_code == 404:
            raise TileNotFound(path)
        assert resp.status_code == 200, resp.text
        return resp.content

    reader = TileReader(fetch, size2, root2)
    reader.verify_root()
    entries = reader.entries(0)
    assert len(entries) == size2
    for p in body["proofs"]:
        assert entries[p["leafIndex"]] == base64.b64decode(p["leaf"])
    assert world.client.get("/v1/log/tile/0/000.p/255").status_code == 404
    assert world.client.get("/v1/log/tile/bogus").status_code == 404


def test_log_key_rotation_cosigns_the_latest_checkpoint(world: UsageWorld, db_url: str) -> None:
    _usage(world, "r", 2)
    size, root, _ = _checkpoint(world)
    old = Verifier.from_vkey(world.client.get("/v1/health").json()["logKey"])
    assert registry_main(["log-key", "--db", db_url, "--rotate"]) == 0
    new = Verifier.from_vkey(world.client.get("/v1/health").json()["logKey"])
    assert new.key_id != old.key_id and new.name == old.name
    note = world.client.get("/v1/log/checkpoint").content
    cp_old, _ = open_checkpoint(note, old)
    cp_new, _ = open_checkpoint(note, new)
    assert (cp_old.size, cp_old.root) == (cp_new.size, cp_new.root) == (size, root)
    _usage(world, "s", 1)
    later = world.client.get("/v1/log/checkpoint").content
    open_checkpoint(later, new)
    with pytest.raises(SignatureError, match="not signed by a known key"):
        open_checkpoint(later, old)


def test_a_failed_transaction_leaves_the_log_as_it_was(world: UsageWorld) -> None:
    size, root, note = _checkpoint(world)
    with world.sessions() as s:
        translog.append(s, [translog.Leaf("acceptance", "c_x", b'{"x":1}')])
        assert translog.tree_size(s) == size + 1
        s.rollback()
    assert _checkpoint(world) == (size, root, note)


def _leaves(tag: str, n: int) -> list[translog.Leaf]:
    return [
        translog.Leaf("acceptance", f"c_{tag}{i}", b'{"%s":%d}' % (tag.encode(), i))
        for i in range(n)
    ]


def _tree_matches_its_leaves(sessions: sessionmaker[Session]) -> None:
    """The stored tiles' root, the checkpoint and the bundles agree with the leaves."""
    with sessions() as s:
        leaves = translog.all_leaves(s)
        size = translog.tree_size(s)
        assert len(leaves) == size
        note = translog.checkpoint_at(s, size)
        assert note is not None
        root = root_of([leaf_hash(leaf.data) for leaf in leaves])
        assert translog.tiled_log(s, size).root() == root
        assert f"\n{size}\n{base64.b64encode(root).decode()}\n".encode() in note


def test_the_right_edge_kept_in_memory_is_used_only_while_it_is_the_stored_one(
    world: UsageWorld, db_url: str
) -> None:
    """An appender keeps the log's right edge (partial tiles and bundle) in memory between
    appends; another writer's append to the same size with other leaves (here: after this
    writer's own append rolled back) makes it read the edge from the database again."""
    mine = world.sessions
    other_engine = make_engine(db_url)
    try:
        other = make_sessionmaker(other_engine)
        with mine() as s:  # the first append reads the edge; the others start from memory
            translog.append(s, _leaves("a", 300))
            s.commit()
        with mine() as s:
            translog.append(s, _leaves("b", 7))
            s.commit()
        _tree_matches_its_leaves(mine)
        with mine() as s:  # kept in memory at size + 20, then rolled back
            translog.append(s, _leaves("x", 20))
            s.rollback()
        with other() as s:  # another process appends other leaves up to that same size
            translog.append(s, _leaves("y", 20))
            s.commit()
        with mine() as s:
            translog.append(s, _leaves("c", 250))
            s.commit()
        _tree_matches_its_leaves(mine)
        with mine() as s:
            logged = translog.all_leaves(s)[-271:-250]
        expected = [_leaves("b", 7)[-1], *_leaves("y", 20)]
        assert [(x.ref, x.data) for x in logged] == [(x.ref, x.data) for x in expected]
    finally:
        other_engine.dispose()


def test_acceptances_are_leaves(client: TestClient, alice: Contributor, bob: Contributor) -> None:
    """A contribution accepted at finalize, and one accepted by the datanet owner's review,
    each become a leaf; a rejected one does not."""
    from tests.registry.test_contributions import FILES, create, upload
    from tests.registry.test_datanets import CSV, CSV2, _pending, make_datanet

    cid = create(client, alice).json()["id"]
    for data in FILES.values():
        upload(client, alice, cid, data)
    assert (
        client.post(f"/v1/contributions/{cid}/finalize", headers=alice.headers).json()["state"]
        == "accepted"
    )
    make_datanet(client, bob, "reviewed", {"review": True})
    good = _pending(client, bob, alice, {"a.csv": CSV})
    bad = _pending(client, bob, alice, {"b.csv": CSV2})
    for c, decision in ((good, "accept"), (bad, "reject")):
        r = client.post(
            f"/v1/contributions/{c}/review", json={"decision": decision}, headers=bob.headers
        )
        assert r.status_code == 200, r.text
    health = client.get("/v1/health").json()
    cp, _ = open_checkpoint(
        client.get("/v1/log/checkpoint").content, Verifier.from_vkey(health["logKey"])
    )
    r = client.post(
        "/v1/log/proof/inclusion",
        json={"contributionIds": [cid, good, bad], "treeSize": cp.size},
    )
    body = r.json()
    assert body["missing"] == [bad]
    for p in body["proofs"]:
        leaf = base64.b64decode(p["leaf"])
        proof = [base64.b64decode(h) for h in p["proof"]]
        verify_inclusion(p["leafIndex"], cp.size, leaf_hash(leaf), proof, cp.root)
        obj = json.loads(leaf)
        assert obj["type"] == "acceptance" and obj["contributionId"] == p["entryId"]
        assert obj["owner"] == alice.fingerprint and len(obj["envelopeSha256"]) == 64
    one = client.get("/v1/log/proof/inclusion", params={"contributionId": good})
    assert one.status_code == 200 and one.json()["entryId"] == good


def _ledger_leaves(world: UsageWorld) -> list[tuple[int, int, bytes]]:
    """(leaf index, ledger id, leaf) of the log's ledger leaves, in log order."""
    with world.sessions() as s:
        leaves = translog.all_leaves(s)
        assert len(leaves) == translog.tree_size(s)
        # every leaf is served by ref as it is stored
        found = translog.leaf_of(s, "ledger", [lf.ref for lf in leaves if lf.kind == "ledger"])
    out = [(i, int(lf.ref), lf.data) for i, lf in enumerate(leaves) if lf.kind == "ledger"]
    assert {str(ref): (i, data) for i, ref, data in out} == found
    return out


def test_settled_leaves_are_the_stored_rows_rendered(world: UsageWorld) -> None:
    """The settler makes its leaves from the rows it inserts, without reading them back: each
    leaf is byte for byte the canonical JSON of the stored row (what `log_ledger` would make
    of it), in ledger id order, every entry once."""
    _usage(world, "p", 12)
    _usage(world, "q", 4)
    leaves = _ledger_leaves(world)
    cols = ", ".join(translog.LEDGER_COLUMNS)
    with world.sessions() as s:
        rows = [
            dict(zip(translog.LEDGER_COLUMNS, r, strict=True))
            for r in s.execute(text(f"SELECT {cols} FROM ledger ORDER BY id")).all()
        ]
        logged = s.execute(text("SELECT ledger_id FROM log_state")).scalar_one()
    assert [ref for _, ref, _ in leaves] == [int(r["id"]) for r in rows]
    assert [idx for idx, _, _ in leaves] == sorted(idx for idx, _, _ in leaves)
    assert logged == rows[-1]["id"]
    for (_, _, leaf), row in zip(leaves, rows, strict=True):
        digest = row["digest"] if row["kind"] == "contributor" else None
        assert leaf == translog.ledger_leaf(row, digest)
        assert leaf == translog.canonical_json(translog.ledger_leaf_obj(row, digest))


def test_rows_another_writer_left_unlogged_are_logged_by_the_next_settlement(
    world: UsageWorld,
) -> None:
    _usage(world, "u", 2)
    with world.sessions() as s:
        s.execute(
            text(
                "INSERT INTO ledger (kind, model_id, amount_micro, at, demo) "
                "VALUES ('protocol', 'test-model', 5, :at, :demo)"
            ),
            {"at": DAY, "demo": False},
        )
        s.commit()
    _usage(world, "v", 3)
    leaves = _ledger_leaves(world)
    with world.sessions() as s:
        ids = [int(i) for i in s.execute(text("SELECT id FROM ledger ORDER BY id")).scalars()]
    assert [ref for _, ref, _ in leaves] == ids  # the foreign row too, in id order, once


def test_migration_0012_down_and_up_keeps_every_leaf(world: UsageWorld) -> None:
    """Downgrading gives the settled leaves their log_leaves rows back; upgrading again makes
    the same bundles from them."""
    from alembic import command

    from registry.db.session import alembic_config

    _usage(world, "m", 6)
    with world.sessions() as s:
        before = [(lf.kind, lf.ref, lf.data) for lf in translog.all_leaves(s)]
        size = translog.tree_size(s)
        bundle = translog.entry_bundle(s, size, 0, size)
    assert before and size < 256
    engine = world.sessions.kw["bind"]
    command.downgrade(alembic_config(engine), "0011")
    with engine.connect() as c:
        rows = c.execute(text("SELECT idx, kind, ref, leaf FROM log_leaves ORDER BY idx")).all()
    assert [int(r[0]) for r in rows] == list(range(size))
    assert [(r[1], r[2], bytes(r[3])) for r in rows] == before
    command.upgrade(alembic_config(engine), "head")
    with world.sessions() as s:
        assert [(lf.kind, lf.ref, lf.data) for lf in translog.all_leaves(s)] == before
        assert translog.entry_bundle(s, size, 0, size) == bundle


def test_migration_0014_stores_bundles_lz4_on_postgresql(world: UsageWorld) -> None:
    """On PostgreSQL bundles are written lz4-compressed (stored out of line uncompressed
    before); down and up again, the served bundle is the same bytes on either database."""
    from alembic import command

    from registry.db.session import alembic_config

    _usage(world, "z", 12)
    engine = world.sessions.kw["bind"]
    with world.sessions() as s:
        size = translog.tree_size(s)
        bundle = translog.entry_bundle(s, size, 0, size)
    assert bundle is not None and len(bundle) > 4096  # past PostgreSQL's TOAST threshold
    postgres = engine.dialect.name == "postgresql"
    column = (
        "SELECT attstorage, attcompression FROM pg_attribute "
        "WHERE attrelid = 'log_bundles'::regclass AND attname = 'data'"
    )
    if postgres:
        with engine.connect() as c:
            assert tuple(c.execute(text(column)).one()) == ("x", "l")
            stored = c.execute(text("SELECT pg_column_compression(data) FROM log_bundles"))
            assert stored.scalar_one() == "lz4"
    command.downgrade(alembic_config(engine), "0013")
    if postgres:
        with engine.connect() as c:
            assert tuple(c.execute(text(column)).one()) == ("e", "")
    with world.sessions() as s:
        assert translog.entry_bundle(s, size, 0, size) == bundle
    command.upgrade(alembic_config(engine), "head")
    _usage(world, "y", 2)  # the right-edge bundle is rewritten, lz4 again
    with world.sessions() as s:
        grown = translog.entry_bundle(s, translog.tree_size(s), 0, size)
        assert grown == bundle
