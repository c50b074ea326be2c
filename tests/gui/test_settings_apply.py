"""Upload settings changed on the Settings page apply to the running queue at once, measured
against a real upload to the real registry (a subprocess on loopback)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.services.context import ServiceContext
from app.settings import UPLOAD_BANDWIDTH_KBPS, UPLOAD_CONCURRENCY
from tests.gui.conftest import add_item
from tests.integration.faults.helpers import random_bytes, start_registry
from tests.support.registry_server import RegistryProcess

pytestmark = pytest.mark.slow

SIZE = 4_000_000
LIMIT_KBPS = 1000  # 1,000,000 bytes per second


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path)
    try:
        yield proc
    finally:
        proc.kill(signal.SIGTERM)


@pytest.fixture
def live_services(
    data_dir: Path, isolated_keyring: Path, registry: RegistryProcess
) -> Iterator[Any]:
    from app.ui.adapters.services import Services

    ctx = ServiceContext(data_dir, registry_url=registry.base_url)
    try:
        yield Services(ctx)
    finally:
        ctx.close()


def _progress(services: Any, item_id: int) -> tuple[int, int, str]:
    for job in services.uploads.jobs():
        if job.item_id == item_id:
            return job.bytes_done, job.bytes_total, job.state
    return 0, 0, ""


def _wait_bytes(services: Any, item_id: int, at_least: int, timeout: float) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, _total, _state = _progress(services, item_id)
        if done >= at_least:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(
        f"{at_least:,} bytes not sent within {timeout} s: {_progress(services, item_id)}"
    )


def test_bandwidth_limit_set_mid_session_applies_to_a_real_upload(
    qtbot: Any, live_services: Any, theme: Any, tmp_path: Path
) -> None:
    from app.ui.main_window import MainWindow

    services = live_services
    services.identity.init()
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "payload.bin").write_bytes(random_bytes(SIZE, seed=7))
    item = add_item(services, folder, title="Big payload", license="CC-BY-4.0")

    win = MainWindow(services, theme, check_registry_on_start=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.uploads.queue is not None, timeout=10_000)
    assert services.ctx.settings.get(UPLOAD_BANDWIDTH_KBPS) == 0  # the session starts unlimited
    services.uploads.ensure_running()  # the queue exists before the limit is set

    win.show_page("settings")
    settings = win.settings_view
    settings.bandwidth.setValue(LIMIT_KBPS)
    settings.concurrency.setValue(3)
    assert services.ctx.settings.get(UPLOAD_BANDWIDTH_KBPS) == LIMIT_KBPS
    assert services.ctx.settings.get(UPLOAD_CONCURRENCY) == 3

    services.uploads.submit(item.id)
    t0 = _wait_bytes(services, item.id, 500_000, timeout=30)
    t1 = _wait_bytes(services, item.id, 2_000_000, timeout=30)
    rate = 1_500_000 / (t1 - t0)
    # The limit holds (a 25 % allowance for sampling; unlimited loopback is ~100x faster).
    assert rate <= LIMIT_KBPS * 1000 * 1.25, f"{rate:,.0f} B/s with a {LIMIT_KBPS} KB/s limit"

    # Lifted mid-upload: the remaining ~2 MB (2 s at the old limit) goes at once.
    settings.bandwidth.setValue(0)
    t2 = time.monotonic()
    _wait_bytes(services, item.id, SIZE, timeout=30)
    assert time.monotonic() - t2 < 1.2, "the lifted limit was not applied to the running upload"
    qtbot.waitUntil(
        lambda: str(services.catalogue.get(item.id).summary.state) in ("submitted", "accepted"),
        timeout=30_000,
    )
    assert services.uploads._queue.options.concurrency == 3  # the running queue's parallelism
    services.uploads.stop()
