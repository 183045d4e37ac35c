"""shared.tasks.finish: what is started is finished, even when its caller is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from shared.tasks import finish


async def test_a_cancelled_caller_still_lets_the_work_finish_then_is_cancelled() -> None:
    done: list[str] = []

    async def work() -> str:
        await asyncio.sleep(0.05)
        done.append("committed")
        return "ok"

    caller = asyncio.create_task(finish(work()))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0)
    caller.cancel()                      # a second cancel while it waits is absorbed too
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert done == ["committed"]


async def test_results_and_errors_pass_through() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def value() -> int:
        return 7

    assert await finish(value()) == 7
    with pytest.raises(ValueError, match="boom"):
        await finish(fails())
