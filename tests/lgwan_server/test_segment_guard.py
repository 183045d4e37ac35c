"""The LGWAN server refuses to start on a host declared for another segment (acceptance statement 1).

Real processes: ``python -m lgwan_server serve`` and ``migrate`` with the declaration file that
``KAKEHASHI_SEGMENT_FILE`` names; a refusal is exit 78 with the reason in Japanese and English, and
leaves no database behind.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from lgwan_harness import base_config, clean_env, toml_text


def _setup(tmp_path: Path, declared: str | None) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "lgwan.toml"
    config.write_text(toml_text(base_config()), encoding="utf-8")
    segment = tmp_path / "segment"
    if declared is not None:
        segment.write_text(declared + "\n", encoding="utf-8")
    return config, clean_env({"KAKEHASHI_SEGMENT_FILE": str(segment), "KAKEHASHI_REQUIRE_SEGMENT": "1"})


@pytest.mark.parametrize(("declared", "code"), [
    ("インターネット接続系", "segment_mismatch"), ("mynumber", "segment_mismatch"), (None, "segment_undeclared"),
    ("dmz", "segment_unknown"),
])
@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_wrong_or_missing_declaration_refuses_to_start(tmp_path: Path, declared: str | None, code: str,
                                                        command: str) -> None:
    config, env = _setup(tmp_path, declared)
    done = subprocess.run([sys.executable, "-m", "lgwan_server", "--config", str(config), command],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, done.stderr
    assert code in done.stderr
    assert not (tmp_path / "data" / "lgwan.sqlite3").exists()
    assert not (tmp_path / "port").exists()


def test_an_lgwan_declaration_starts(tmp_path: Path) -> None:
    config, env = _setup(tmp_path, "LGWAN接続系")
    proc = subprocess.Popen([sys.executable, "-m", "lgwan_server", "--config", str(config), "serve"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "port").exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.parametrize("declared", ["LGWAN接続系", "mynumber"])
def test_the_relay_refuses_anything_but_the_internet_segment(tmp_path: Path, declared: str) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[storage]\ndata_dir = "data"\n', encoding="utf-8")
    _, env = _setup(tmp_path, declared)
    done = subprocess.run([sys.executable, "-m", "internet_relay", "--config", str(config), "serve"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, done.stderr
    assert "segment_mismatch" in done.stderr and "インターネット接続系" in done.stderr
    assert not (tmp_path / "data").exists()
