"""Isolation: forked, confined children; limits and crashes become refusals, never hangs.

The misbehaving children come from the worker's test hooks, which need both the pool's
``test_hooks=True`` and ``KAKEHASHI_SANITIZER_TEST_HOOKS=1`` (see conftest's ``pool``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import time
import zipfile
from pathlib import Path

import pytest
from sanitizer_samples import docx, hostile_pdf_everywhere, para, pdf_bytes, pdf_document, png_bytes

from sanitizer.errors import Code
from sanitizer.forkserver import TEST_HOOKS_ENV
from sanitizer.limits import Limits
from sanitizer.pool import SanitizerPool

MiB = 1024 * 1024


def hook(pool, action: str, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = pool.sanitize(b"payload", f"__test_hook__-{action}", limits)
    return result, time.monotonic() - started


def test_cpu_limit_ends_a_spinning_worker(pool) -> None:  # type: ignore[no-untyped-def]
    result, elapsed = hook(pool, "cpu", Limits(cpu_seconds=1, wall_seconds=30))
    assert result.code is Code.LIMIT_CPU and result.data is None
    assert elapsed < 10


def test_memory_limit_ends_a_hungry_worker(pool) -> None:  # type: ignore[no-untyped-def]
    result, _ = hook(pool, "memory", Limits(memory_bytes=768 * MiB))
    assert result.code is Code.LIMIT_MEMORY


def test_wall_clock_limit_ends_a_sleeping_worker(pool) -> None:  # type: ignore[no-untyped-def]
    result, elapsed = hook(pool, "sleep", Limits(wall_seconds=1.0))
    assert result.code is Code.LIMIT_TIME
    assert elapsed < 1.0 + 5  # killed, not waited for


def test_a_crash_is_a_refusal(pool) -> None:  # type: ignore[no-untyped-def]
    result, _ = hook(pool, "crash")
    assert result.code is Code.WORKER_CRASHED


def test_a_garbage_reply_is_a_refusal(pool) -> None:  # type: ignore[no-untyped-def]
    result, _ = hook(pool, "garbage")
    assert result.code is Code.WORKER_PROTOCOL and result.data is None


def test_workers_have_no_network(pool) -> None:  # type: ignore[no-untyped-def]
    result, _ = hook(pool, "network")
    if pool.pool.isolation.get("network", "").startswith("none"):
        pytest.skip(
            "no privilege for a network namespace here; the deploy unit's PrivateNetwork= provides it"
        )
    assert "network=" in result.report.detail and "connected" not in result.report.detail


def test_workers_are_confined(pool) -> None:  # type: ignore[no-untyped-def]
    limits = Limits(memory_bytes=1024 * MiB, cpu_seconds=7)
    result, _ = hook(pool, "probe", limits)
    facts = dict(item.split("=") for item in result.report.detail.split())
    # stdio, the job socket, the input memfd (mapped in place, so kept open), the output
    # memfd, and the directory listing itself: nothing inherited from the fork server.
    assert int(facts["fds"]) <= 7
    assert int(facts["as"]) <= 1024 * MiB and int(facts["cpu"]) == 7
    if os.geteuid() == 0:
        assert facts["uid"] == "65534"


def _facts(detail: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in detail.split())


def test_each_file_gets_a_fresh_worker_that_reaches_only_its_own_job(pool) -> None:  # type: ignore[no-untyped-def]
    # Spares get their job straight from the pool over a socket pair of their own; a
    # worker must see exactly that socket and its own two memfds (the input holding its
    # own file), never a previous file's descriptors or another spare's socket.
    first = _facts(pool.sanitize(b"first file", "__test_hook__-fds").report.detail)
    second = _facts(pool.sanitize(b"second file", "__test_hook__-fds").report.detail)
    assert first["pid"] != second["pid"]
    for facts, data in ((first, b"first file"), (second, b"second file")):
        assert (facts["sockets"], facts["inputs"], facts["memfds"], facts["other"]) == ("1", "1", "1", "0")
        assert facts["input"] == hashlib.sha256(data).hexdigest()[:16]


def test_a_spare_that_died_idle_is_not_given_a_file(pool) -> None:  # type: ignore[no-untyped-def]
    client = pool.pool._client
    assert client is not None and client._idle
    victim, _sock = client._idle[0]
    os.kill(victim, signal.SIGKILL)  # as if the OOM killer had picked an idle spare
    for _ in range(200):  # the fork server reaps it and reports the exit
        if all(pid != victim for pid, _ in list(client._idle)):
            break
        time.sleep(0.01)
    else:
        pytest.fail("the pool kept a dead spare")
    results = [pool.sanitize(png_bytes(), f"{i}.png") for i in range(3)]
    assert all(r.rebuilt for r in results), [r.report.detail for r in results]


def test_workers_cannot_write_outside_their_directory(pool) -> None:  # type: ignore[no-untyped-def]
    result, _ = hook(pool, "write")
    assert result.code is not Code.OK
    assert not Path("/etc/kakehashi-sanitizer-test").exists()


def test_a_zip_bomb_past_the_static_checks_still_hits_the_memory_limit(pool) -> None:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx(para("x")))) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        with dst.open("word/pad.xml", "w") as fh:
            for _ in range(300):
                fh.write(b"\x00" * MiB)
    # The member alone is larger than the whole address-space limit: deterministic.
    lenient = Limits(
        max_zip_ratio=10**6, max_zip_member_bytes=2**40, max_zip_total_bytes=2**40, memory_bytes=256 * MiB
    )
    result = pool.sanitize(out.getvalue(), "bomb.docx", lenient)
    assert result.code is Code.LIMIT_MEMORY


def test_hostile_pdf_through_isolation(pool) -> None:  # type: ignore[no-untyped-def]
    result = pool.sanitize(hostile_pdf_everywhere(), "hostile.pdf")
    assert result.rebuilt and result.report.removed
    assert result.report.isolation["process"].startswith("one forked child per file")


async def test_async_api_serves_concurrent_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEST_HOOKS_ENV, raising=False)
    files = [(pdf_bytes(pdf_document(pages=2)), f"{i}.pdf") for i in range(8)]
    files += [(png_bytes(), f"{i}.png") for i in range(8)]
    files.append((b"plain text", "__test_hook__-cpu.txt"))  # hooks are off without the env variable
    async with SanitizerPool(Limits(wall_seconds=60), workers=2) as pool:
        assert pool.isolation["network"]
        results = await asyncio.gather(*(pool.sanitize(data, name) for data, name in files))
    assert all(r.rebuilt for r in results), [r.report.detail for r in results if not r.rebuilt]
    assert results[-1].data == b"plain text"


async def test_fork_server_is_restarted_after_it_dies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEST_HOOKS_ENV, raising=False)
    async with SanitizerPool(workers=1) as pool:
        first = await pool.sanitize(png_bytes(), "a.png")
        client = pool._client
        assert client is not None and client._process is not None
        client._process.kill()
        for _ in range(100):
            if not client.alive:
                break
            await asyncio.sleep(0.05)
        second = await pool.sanitize(png_bytes(), "b.png")
    assert first.rebuilt and second.rebuilt


async def test_oversized_and_empty_inputs_never_reach_a_worker() -> None:
    pool = SanitizerPool(Limits(max_input_bytes=10))
    too_big = await pool.sanitize(b"x" * 11, "a.txt")
    empty = await pool.sanitize(b"", "a.txt")
    assert too_big.code is Code.TOO_LARGE and empty.code is Code.EMPTY_FILE
    assert pool._client is None  # no fork server was needed
