"""In-memory token buckets for rate limits (login attempts per address, posts per person)."""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    """``allow(key)`` is True while ``key`` stays under ``rate`` per ``per`` seconds (burst = rate).

    At most ``max_keys`` buckets are kept; the least recently seen key is forgotten first, so a
    flood of distinct keys (addresses) costs bounded memory.
    """

    def __init__(self, rate: float, per: float, max_keys: int = 100_000) -> None:
        self.capacity = float(rate)
        self.refill = rate / per
        self.max_keys = max_keys
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def allow(self, key: object, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; False (and nothing taken) when too few are left."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill)
        allowed = tokens >= cost
        self._buckets[key] = (tokens - cost if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)   # forget the least recently seen key
        return allowed
