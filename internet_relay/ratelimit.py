"""In-memory token buckets (login attempts per address, posts per account).

The same small class as lgwan_server/ratelimit.py; a relay host installs no LGWAN code.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    """``allow(key)`` is True while ``key`` stays under ``rate`` per ``per`` seconds (burst = rate)."""

    def __init__(self, rate: float, per: float, max_keys: int = 100_000) -> None:
        self.capacity = float(rate)
        self.refill = rate / per
        self.max_keys = max_keys
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def allow(self, key: object, cost: float = 1.0) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill)
        allowed = tokens >= cost
        self._buckets[key] = (tokens - cost if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
