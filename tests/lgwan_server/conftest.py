"""Fixtures for the LGWAN server's real-process tests.

* ``demo_template`` (session): the sample city loaded once with the real CLI (``load-demo``).
* ``demo_server`` (session): one server over a copy of it, for read-mostly tests. Each test takes
  its own people from ``people`` and creates its own rooms, so tests stay independent.
* ``make_server`` (function): a factory for servers a test may break (retire, allowlist, tamper).
* ``clients``: StaffClient factory; everything it made is closed after the test.

After every test, each server it touched is checked for unhandled errors in its log, and on
failure the tail of that log is printed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lgwan_harness import ClientFactory, Roster, ServerProcess

_LIVE: list[ServerProcess] = []   # the session server, once started


@dataclass(frozen=True)
class Template:
    data_dir: Path
    roster: Roster


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("demo-template")
    loader = ServerProcess(root)
    result = loader.cli("load-demo")
    assert result.returncode == 0, result.stderr
    return Template(loader.data_dir, Roster.from_db(loader.db_path))


# The session server caps uploads at 1 MiB so the size limit can be tested without 50 MiB bodies,
# and allows many logins per minute because every test logs in from 127.0.0.1.
DEMO_SERVER_CONFIG: dict[str, dict[str, Any]] = {
    "limits": {"max_upload_bytes": "1 MiB"},
    "auth": {"login_attempts_per_minute_per_ip": 100_000},
}


@pytest.fixture(scope="session")
def demo_server(demo_template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("demo-server"), DEMO_SERVER_CONFIG, name="demo_server")
    server.copy_data_from(demo_template.data_dir)
    server.start()
    _LIVE.append(server)
    try:
        yield server
    finally:
        _LIVE.remove(server)
        code = server.stop()
        assert code == 0, f"session server exited with {code}:\n{server.log_tail()}"


@pytest.fixture(scope="module")
def module_server(demo_template: Template, tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A demo server shared by one test module (config: the module's ``MODULE_SERVER_CONFIG``)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    config = {"auth": {"login_attempts_per_minute_per_ip": 100_000}, **getattr(request.module, "MODULE_SERVER_CONFIG", {})}
    server = ServerProcess(tmp_path_factory.mktemp(name), config, name=f"{name}_server")
    server.copy_data_from(demo_template.data_dir)
    server.start()
    _LIVE.append(server)
    try:
        yield server
    finally:
        _LIVE.remove(server)
        code = server.stop()
        assert code == 0, f"{server.name} exited with {code}:\n{server.log_tail()}"


@pytest.fixture(scope="session")
def people(demo_template: Template) -> Roster:
    """People of the session server; each is handed out once per session."""
    return demo_template.roster.fork()


@pytest.fixture
def make_server(demo_template: Template, tmp_path: Path,
                request: pytest.FixtureRequest) -> Iterator[Callable[..., ServerProcess]]:
    """``make_server(config=None, demo=True, start=True)``: a server of the test's own.

    At teardown it is stopped with SIGTERM (SIGKILL after 10 s) and its whole log is checked.
    """
    made: list[ServerProcess] = []

    def factory(config: dict[str, dict[str, Any]] | None = None, *, demo: bool = True, start: bool = True,
                name: str | None = None) -> ServerProcess:
        index = len(made)
        server = ServerProcess(tmp_path / f"server{index}", {"auth": {"login_attempts_per_minute_per_ip": 100_000},
                                                             **(config or {})}, name=name or f"server{index}")
        if demo:
            server.copy_data_from(demo_template.data_dir)
        made.append(server)
        if start:
            server.start()
        return server

    yield factory
    problems = []
    for server in made:
        server.stop()
        problems += _check_log(request, server, 0)
    assert not problems, "\n\n".join(problems)


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(request.node, f"rep_{phase}", None) is not None
               and getattr(request.node, f"rep_{phase}").failed for phase in ("setup", "call"))


def _check_log(request: pytest.FixtureRequest, server: ServerProcess, offset: int) -> list[str]:
    """Unhandled errors the server logged since ``offset``; prints the log tail when the test failed."""
    errors = server.error_lines_since(offset)
    if _failed(request):
        tail = [line[:2000] for line in server.log_since(offset).splitlines()[-40:]]
        print(f"\n----- {server.name} log (last {len(tail)} lines of this test) -----\n" + "\n".join(tail))
    if errors:
        return [f"{server.name} logged errors during {request.node.nodeid}:\n" + "\n".join(e[:3000] for e in errors[:10])]
    return []


@pytest.fixture
def roster(demo_template: Template) -> Roster:
    """People for a server of the test's own (a fresh roster: anyone may be taken)."""
    return demo_template.roster.fork()


@pytest.fixture
async def clients() -> AsyncIterator[ClientFactory]:
    factory = ClientFactory()
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture(autouse=True)
def _session_server_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which the session server logged an unhandled error; print its log on failure."""
    offsets = {id(s): s.log_size() for s in _LIVE}
    yield
    problems = [p for server in list(_LIVE) for p in _check_log(request, server, offsets.get(id(server), 0))]
    assert not problems, "\n\n".join(problems)
