"""What the upload queue's parts share: the registry client and tus, the options, and the
signals that stop and wake them."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

from app.registry_client.api import RegistryClient
from app.registry_client.tus import BandwidthLimiter, TusClient
from app.services.clients import make_client
from app.services.context import ServiceContext
from app.services.identity import PassphraseFn
from app.services.uploads.options import MAX_CONCURRENCY, QueueOptions


class Runtime:
    """One queue's connection to one registry and its run-time signals (any thread)."""

    def __init__(
        self,
        ctx: ServiceContext,
        options: QueueOptions,
        client: RegistryClient | None,
        passphrase: str | PassphraseFn | None,
    ) -> None:
        self.ctx = ctx
        self.options = options
        self.own_client = client is None
        self.client = client or make_client(
            ctx,
            passphrase=passphrase,
            timeouts=options.timeouts,
            retry=options.retry,
            pool_size=max(options.concurrency, MAX_CONCURRENCY) + 2,
        )
        # Always present (0 = unlimited) so a limit set while uploads run applies at once.
        self.limiter = BandwidthLimiter(options.bandwidth_bytes_per_s)
        self.tus = TusClient(self.client.http, chunk_size=options.chunk_size, limiter=self.limiter)
        self.stop = threading.Event()  # replaced by each run() (its caller's event)
        self.wake = threading.Event()  # the scheduler looks again (a task ended, a control)
        self.start_lock = threading.Lock()  # serialises the queued → uploading moves
        self.job_stops: dict[int, threading.Event] = {}  # per in-flight tus upload
        self.finalize_after: dict[int, float] = {}  # item id → monotonic time to retry at
        self.rng = random.Random()
        self.fatal: BaseException | None = None  # a worker's bug: run() raises it
        self.running = False
        self.batch_ok = True  # until the registry says it has no batch route

    def set_limits(
        self, *, bandwidth_bytes_per_s: int | None = None, concurrency: int | None = None
    ) -> None:
        if bandwidth_bytes_per_s is not None:
            self.limiter.set_rate(max(0, bandwidth_bytes_per_s))
            self.options = replace(self.options, bandwidth_bytes_per_s=bandwidth_bytes_per_s)
        if concurrency is not None:
            n = min(MAX_CONCURRENCY, max(1, concurrency))
            self.options = replace(self.options, concurrency=n)
        self.wake.set()

    def stop_uploads(self, *, keep: int | None = None) -> None:
        """Abandon the in-flight tus uploads (but `keep`'s); they resume from the offset the
        registry confirmed."""
        for jid, ev in list(self.job_stops.items()):
            if jid != keep:
                ev.set()

    def paced(self, nbytes: int) -> bool:
        """Wait until the bandwidth limit allows sending `nbytes` (a batch body), a block at
        a time so a stop is seen; False when the queue is stopping."""
        while nbytes > 0 and not self.limiter.unlimited:
            if self.stop.is_set():
                return False
            n = min(nbytes, self.limiter.block_size())
            self.limiter.acquire(n)
            nbytes -= n
        return not self.stop.is_set()

    def close(self) -> None:
        if self.own_client:
            self.client.close()
