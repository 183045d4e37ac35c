"""In-memory token buckets for rate limits: ``shared.ratelimit`` (the relay uses the same class)."""

from __future__ import annotations

from shared.ratelimit import RateLimiter

__all__ = ["RateLimiter"]
