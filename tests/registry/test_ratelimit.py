"""Per-key token buckets: 429 + Retry-After + error body; keys are fingerprints, else IPs."""

from __future__ import annotations

from pathlib import Path

from starlette.types import Receive, Scope, Send

from registry.ratelimit import TokenBuckets
from tests.support.registry_actors import Contributor
from tests.support.usage_data import usage_world


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_burst_then_refills() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=3, clock=clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == 20.0  # one token every 20 s
    assert buckets.take("other") == 0.0  # keys are independent
    clock.now += 10
    assert buckets.take("k") == 10.0
    clock.now += 10
    assert buckets.take("k") == 0.0
    clock.now += 3600
    assert [buckets.take("k") for _ in range(4)][-1] > 0  # refills to capacity, not beyond


def test_429_with_retry_after_per_key(db_url: str, tmp_path: Path) -> None:
    # The world's setup (sign-ins, model) spends tokens too: use a limit above that, per key.
    with usage_world(db_url, tmp_path, contributors=2, rate_limit_per_minute=6) as world:
        a, b = world.contributors
        statuses = [
            world.client.get("/v1/me/rewards", headers=a.headers).status_code for _ in range(7)
        ]
        assert statuses[0] == 200
        assert statuses[-1] == 429
        r = world.client.get("/v1/me/rewards", headers=a.headers)
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 10
        assert r.json()["error"]["code"] == "rate_limited"
        assert r.json()["error"]["details"]["retryAfter"] == int(r.headers["Retry-After"])
        # Another key is not affected by a's bucket, and a new token does not reset it.
        assert world.client.get("/v1/me/rewards", headers=b.headers).status_code == 200
        assert world.client.get("/v1/health").status_code == 200  # probes are exempt


def test_unauthenticated_callers_are_limited_by_ip(db_url: str, tmp_path: Path) -> None:
    with usage_world(db_url, tmp_path, contributors=0, rate_limit_per_minute=4) as world:
        codes = [world.client.get("/v1/datanets").status_code for _ in range(10)]
        assert codes.count(429) >= 5
        late = Contributor()
        ch = world.client.post("/v1/auth/challenge", json={"publicKey": late.public_key})
        assert ch.status_code == 429 and "Retry-After" in ch.headers


def test_fresh_tokens_share_the_keys_bucket(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    with usage_world(db, tmp_path, contributors=1, rate_limit_per_minute=30) as world:
        who = world.contributors[0]
        old = dict(who.headers)
        codes = [world.client.get("/v1/me/summary", headers=old).status_code for _ in range(40)]
        assert 429 in codes
        # Signing in again costs requests by IP; the new token maps to the same exhausted key.
        new_token = who.sign_in(world.client)
        assert new_token != old["Authorization"].split()[1]
        assert world.client.get("/v1/me/summary", headers=who.headers).status_code == 429


def test_upload_routes_spend_their_own_larger_budget(db_url: str, tmp_path: Path) -> None:
    with usage_world(
        db_url, tmp_path, contributors=1, rate_limit_per_minute=6, upload_rate_limit_per_minute=12
    ) as world:
        who = world.contributors[0]
        api = [
            world.client.get("/v1/me/summary", headers=who.headers).status_code for _ in range(8)
        ]
        assert api[-1] == 429  # the API budget is spent...
        uploads = [
            world.client.head("/v1/uploads/u_nope", headers=who.headers).status_code
            for _ in range(14)
        ]
        assert uploads[0] != 429  # ...but upload requests still go through (answered 4xx here),
        assert 10 <= uploads.index(429) <= 12  # until their own, larger budget is spent,
        r = world.client.get("/v1/me/summary", headers=who.headers)
        assert r.status_code == 429  # and spending it gave the API budget nothing back.


def test_only_upload_paths_spend_the_upload_budget(tmp_path: Path) -> None:
    from registry.db.session import make_engine, make_sessionmaker
    from registry.ratelimit import RateLimitMiddleware, TokenOwners

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    general, upload = TokenBuckets(per_minute=5), TokenBuckets(per_minute=50)
    mw = RateLimitMiddleware(
        inner, buckets=general, owners=TokenOwners(make_sessionmaker(engine)), upload_buckets=upload
    )
    engine.dispose()
    assert mw.buckets_for("/v1/uploads") is upload
    assert mw.buckets_for("/v1/uploads/batch") is upload
    assert mw.buckets_for("/v1/uploads/u_1") is upload
    assert mw.buckets_for("/v1/uploadsX") is general
    assert mw.buckets_for("/v1/contributions") is general
