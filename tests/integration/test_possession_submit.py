"""Submit against the real registry when the bytes are already there: another key proves it
holds them instead of uploading them; the same key re-submits for free (0 bytes sent)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.services.catalogue import CatalogueService
from tests.integration.faults.helpers import (
    Desk,
    assert_blobs_equal,
    desk_fixture,  # noqa: F401 - fixture 'desk'
    make_desk,
    proxy_fixture,  # noqa: F401 - fixture 'proxy'
    random_bytes,
    registry_fixture,  # noqa: F401 - fixture 'registry'
)
from tests.integration.faults.proxy import Fault, FaultProxy
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow  # each test starts its own registry process

FILES = {
    "big.bin": random_bytes(3 * 1024 * 1024 + 5, 11),  # sampled proof (> 1 MiB)
    "mid.bin": random_bytes(400_000, 12),  # whole-content proof
    "small.txt": b"tiny\n" * 10,  # below the proof threshold: uploaded
}


def _stored(reg: RegistryProcess) -> tuple[int, list[str]]:
    """(tus uploads the registry has seen, blob files and packs in its store)."""
    db = sqlite3.connect(f"file:{reg.blobs_dir.parent / 'registry.sqlite3'}?mode=ro", uri=True)
    try:
        uploads = int(db.execute("SELECT count(*) FROM uploads").fetchone()[0])
    finally:
        db.close()
    files = sorted(
        str(p.relative_to(reg.blobs_dir))
        for p in reg.blobs_dir.rglob("*")
        if p.is_file() and not p.name.startswith("index.sqlite3")
    )
    return uploads, files


def test_another_key_proves_held_blobs_instead_of_sending_them(
    desk: Desk, tmp_path: Path, registry: RegistryProcess
) -> None:
    first = desk.add("a", FILES)
    result = desk.submit(first)
    assert result.blobs_to_upload == 3  # nothing stored yet: the proofs fail, all are sent
    desk.queue().run()
    assert desk.state(first) == "accepted"
    other = make_desk(tmp_path, tmp_path / "data-b", registry.base_url)
    try:
        item = other.add("b", FILES)
        result = other.submit(item)
        assert (result.blobs_to_upload, result.bytes_to_upload) == (1, len(FILES["small.txt"]))
        snap = other.queue().run()
        assert other.state(item) == "accepted"
        assert sum(c.total_bytes for c in snap.contributions if c.item_id == item) == len(
            FILES["small.txt"]
        )
        created = [
            h.detail for h in CatalogueService(other.ctx).history(item) if h.event == "created"
        ]
        assert created and "2 proved held, not sent" in created[0]
    finally:
        other.ctx.close()
    assert_blobs_equal(registry, FILES)


def test_resubmitting_own_data_sends_zero_bytes(desk: Desk, registry: RegistryProcess) -> None:
    first = desk.add("a", FILES)
    desk.submit(first)
    desk.queue().run()
    before = _stored(registry)
    renamed = {f"copy-of-{rel}": data for rel, data in FILES.items()}  # same bytes, new item
    again = desk.add("again", renamed, title="The same files again")
    result = desk.submit(again)
    assert (result.blobs_to_upload, result.bytes_to_upload) == (0, 0)
    desk.queue().run()
    assert desk.state(again) == "accepted"
    assert _stored(registry) == before  # no upload began, no blob or pack was written


def test_a_registry_without_the_proof_routes_gets_the_bytes(
    desk: Desk, tmp_path: Path, registry: RegistryProcess, proxy: FaultProxy
) -> None:
    """An older registry (404 for the possession routes): everything is uploaded, as before."""
    first = desk.add("a", FILES)
    desk.submit(first)
    desk.queue().run()
    old = b'{"error":{"code":"not_found","message":"Not Found","details":null}}'
    fault = proxy.add(
        Fault("answer", 1, method="POST", path_prefix="/v1/contributions/", status=404, body=old)
    )
    other = make_desk(tmp_path, tmp_path / "data-b", proxy.url)
    try:
        item = other.add("b", FILES)
        result = other.submit(item)
        assert fault.applied == 1
        assert not result.offline and result.blobs_to_upload == 3
        other.queue().run()
        assert other.state(item) == "accepted"
    finally:
        other.ctx.close()
