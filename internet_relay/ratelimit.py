"""In-memory token buckets (login attempts per address, posts per account): ``shared.ratelimit``."""

from __future__ import annotations

from shared.ratelimit import RateLimiter

__all__ = ["RateLimiter"]
