"""Garbage-collector settings for a server holding thousands of WebSockets.

With 10,000 open sockets a full (generation 2) collection walks well over a million container
objects and stops the event loop for 0.3–0.7 s on the reference machine — every WebSocket delivery
waits. CPython starts one whenever objects promoted since the last one exceed a quarter of the
long-lived heap, and with the default thresholds (700, 10, 10) the temporaries of a single
一斉送信 (10,000 rows and tuples living a few milliseconds) are promoted before they die, so every
few broadcasts paid a full collection. Larger young-generation thresholds let such temporaries die
by reference counting first; collections still run, just rarely. Objects alive at start-up
(modules, configuration, catalogues) are frozen out of every collection.

Pauses over ``SLOW_GC_MS`` are logged so an operator can see them.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

THRESHOLDS = (20_000, 5, 100)
SLOW_GC_MS = 100.0


class _PauseLog:
    def __init__(self) -> None:
        self.started = 0.0
        self.full_collections = 0
        self.last_full_ms = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000
        if info.get("generation") == 2:
            self.full_collections += 1
            self.last_full_ms = round(ms, 1)
        if ms > SLOW_GC_MS:
            log.warning("slow garbage collection", extra={"generation": info.get("generation"), "ms": round(ms, 1),
                                                          "collected": info.get("collected")})


PAUSES = _PauseLog()


def configure_for_server() -> None:
    """Call once the server is set up (before it accepts connections)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    if PAUSES not in gc.callbacks:
        gc.callbacks.append(PAUSES)
