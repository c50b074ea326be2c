"""Shared pieces of the upload tests: a live registry, a desk (catalogue + identity) using it.

Fixtures are imported by the test modules that need them (`registry_fixture` provides
`registry`, `desk_fixture` provides `desk`, `proxy_fixture` provides `proxy`).
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.registry_client.http import RetryPolicy, Timeouts
from app.services.catalogue import CatalogueService, ImportRequest
from app.services.context import ServiceContext
from app.services.identity import IdentityService
from app.services.submit import SubmitResult, SubmitService
from app.services.uploads import QueueOptions, UploadQueue
from registry.blobstore import FileBlobStore
from tests.integration.faults.proxy import FaultProxy
from tests.support.registry_actors import Contributor
from tests.support.registry_server import RegistryProcess

FAST_RETRY = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.2, max_retry_after_s=2.0)
# Retries come fast; a read may take as long as a loaded CI machine needs (a test that wants a
# stall to time out sets its own read timeout).
FAST_TIMEOUTS = Timeouts(connect=2.0, read=20.0)


def fast_options(**kw: object) -> QueueOptions:
    base: dict[str, object] = {
        "concurrency": 2,
        "chunk_size": 256 * 1024,
        "timeouts": FAST_TIMEOUTS,
        "retry": FAST_RETRY,
        "probe_min_s": 0.1,
        "probe_max_s": 0.5,
    }
    base.update(kw)
    return QueueOptions(**base)  # type: ignore[arg-type]


def start_registry(tmp_path: Path, *extra: str) -> RegistryProcess:
    folder = tmp_path / "registry"
    folder.mkdir(exist_ok=True)
    proc = RegistryProcess(
        f"sqlite:///{folder / 'registry.sqlite3'}", folder / "blobs", extra_args=extra
    )
    proc.start()
    return proc


@pytest.fixture(name="registry")
def registry_fixture(tmp_path: Path) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path)
    try:
        yield proc
    finally:
        proc.kill(signal.SIGTERM)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_bytes(n: int, seed: int) -> bytes:
    """Deterministic incompressible bytes (fast for MBs)."""
    out = bytearray()
    block = hashlib.sha512(seed.to_bytes(8, "big")).digest()
    while len(out) < n:
        block = hashlib.sha512(block).digest()
        out += block * 64
    return bytes(out[:n])


@dataclass
class Desk:
    """One user's app: catalogue, identity and services for one data dir and registry URL."""

    ctx: ServiceContext
    root: Path

    def add(self, name: str, files: dict[str, bytes], *, title: str | None = None) -> int:
        folder = self.root / name
        for rel, data in files.items():
            p = folder / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        summary = CatalogueService(self.ctx).add(
            ImportRequest(paths=[folder], title=title or name, license="CC-BY-4.0")
        )
        return summary.id

    def submit(self, item_id: int) -> SubmitResult:
        return SubmitService(self.ctx).submit(item_id)

    def queue(self, **kw: object) -> UploadQueue:
        return UploadQueue(self.ctx, options=fast_options(**kw))

    def state(self, item_id: int) -> str:
        return CatalogueService(self.ctx).get(item_id).summary.state.value

    def file(self, name: str, rel: str) -> Path:
        return self.root / name / rel


def make_desk(tmp_path: Path, data_dir: Path, url: str) -> Desk:
    ctx = ServiceContext(data_dir, url)
    IdentityService(ctx).init()
    root = tmp_path / "datasets"
    root.mkdir(exist_ok=True)
    return Desk(ctx, root)


@pytest.fixture(name="proxy")
def proxy_fixture(registry: RegistryProcess) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of `registry` (no faults until a test sets some)."""
    p = FaultProxy(registry.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(name="desk")
def desk_fixture(
    tmp_path: Path, data_dir: Path, isolated_keyring: Path, registry: RegistryProcess
) -> Iterator[Desk]:
    d = make_desk(tmp_path, data_dir, registry.base_url)
    try:
        yield d
    finally:
        d.ctx.close()


@pytest.fixture(name="operator")
def operator_fixture() -> Contributor:
    """A model operator's key, configured on the `registry` below."""
    return Contributor()


@pytest.fixture(name="registry")
def operator_registry_fixture(tmp_path: Path, operator: Contributor) -> Iterator[RegistryProcess]:
    """A real registry process that takes usage from `operator` (import it with `desk_fixture`
    where usage and rewards are needed)."""
    proc = start_registry(tmp_path, "--operator-key", operator.public_key)
    try:
        yield proc
    finally:
        proc.kill(signal.SIGTERM)


def assert_blobs_equal(reg: RegistryProcess, files: dict[str, bytes]) -> None:
    """Every file's bytes are in the registry's blob store (loose or packed), unchanged."""
    store = FileBlobStore(reg.blobs_dir)
    try:
        for rel, data in files.items():
            sha = sha256(data)
            assert store.has(sha), f"blob of {rel} missing at the registry"
            with store.open(sha) as fh:
                assert fh.read() == data, f"blob of {rel} differs"
    finally:
        store.close()


def leftover_partials(reg: RegistryProcess) -> list[str]:
    d = reg.blobs_dir / ".uploads"
    return sorted(os.listdir(d)) if d.exists() else []
