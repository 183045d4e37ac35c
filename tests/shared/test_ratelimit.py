"""shared.ratelimit: token buckets with a burst, a refill rate and a bounded number of keys."""

from __future__ import annotations

import pytest

from shared import ratelimit
from shared.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", fake.monotonic)
    return fake


def test_burst_then_refill(clock: Clock) -> None:
    limiter = RateLimiter(3, 60)               # 3 per minute: a burst of 3, then one every 20 s
    assert [limiter.allow("ip") for _ in range(4)] == [True, True, True, False]
    clock.now += 19
    assert not limiter.allow("ip")
    clock.now += 1
    assert limiter.allow("ip")
    assert not limiter.allow("ip")
    clock.now += 3600                          # a long pause refills to the burst, never beyond
    assert [limiter.allow("ip") for _ in range(4)] == [True, True, True, False]


def test_keys_are_independent_and_a_refusal_costs_nothing(clock: Clock) -> None:
    limiter = RateLimiter(2, 10)
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")
    clock.now += 5                             # one token back for "a"; the refused call took none
    assert limiter.allow("a") and not limiter.allow("a")


def test_cost(clock: Clock) -> None:
    limiter = RateLimiter(5, 5)
    assert limiter.allow("k", cost=4)
    assert not limiter.allow("k", cost=2)
    assert limiter.allow("k", cost=1)


def test_least_recently_seen_key_is_forgotten(clock: Clock) -> None:
    limiter = RateLimiter(1, 3600, max_keys=2)
    assert limiter.allow("old") and limiter.allow("mid")
    assert not limiter.allow("old")            # touching "old" makes "mid" the least recent
    assert limiter.allow("new")                # evicts "mid"
    assert limiter.allow("mid")                # a fresh bucket again (and evicts "old")
    assert limiter.allow("old")


def test_the_tiers_use_it() -> None:
    from internet_relay import ratelimit as relay_ratelimit
    from lgwan_server import ratelimit as lgwan_ratelimit

    assert lgwan_ratelimit.RateLimiter is RateLimiter and relay_ratelimit.RateLimiter is RateLimiter
