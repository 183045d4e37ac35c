"""Fixtures for the sanitizer tests: the shared corpus, libmagic, and a live worker pool."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from sanitizer.forkserver import TEST_HOOKS_ENV
from sanitizer.libmagic import Detector
from sanitizer.limits import Limits
from sanitizer.pool import Result, SanitizerPool

CORPUS = Path(
    os.environ.get("KAKEHASHI_CORPUS") or Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The read-only shared corpus; tests using it skip when it is not there."""
    if not (CORPUS / "threats").is_dir():
        pytest.skip(f"CDR corpus not found at {CORPUS}; set KAKEHASHI_CORPUS to its directory")
    return CORPUS


@pytest.fixture(scope="session")
def detector() -> Detector:
    return Detector()


class ThreadedPool:
    """A ``SanitizerPool`` running on its own event loop thread, callable from sync tests.

    Hypothesis and most tests are synchronous; sharing one fork server across them keeps
    the suite fast while every file still goes through real child processes.
    """

    def __init__(self, *, test_hooks: bool) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sanitizer-pool", daemon=True)
        self.thread.start()
        self.pool = SanitizerPool(Limits(), test_hooks=test_hooks)
        self._call(self.pool.start())

    def _call(self, coroutine):  # type: ignore[no-untyped-def]
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=300)

    def sanitize(self, data: bytes, name: str, limits: Limits | None = None) -> Result:
        return self._call(self.pool.sanitize(data, name, limits=limits))

    def close(self) -> None:
        self._call(self.pool.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="session")
def pool() -> Iterator[ThreadedPool]:
    """One fork server for the session, with the misbehaviour hooks enabled."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TEST_HOOKS_ENV, "1")
        threaded = ThreadedPool(test_hooks=True)
        try:
            yield threaded
        finally:
            threaded.close()
