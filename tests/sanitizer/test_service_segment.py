"""The sanitizer service runs on either segment of 三層分離 but never on マイナンバー利用事務系 (acceptance 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("declared", ["mynumber", "マイナンバー利用事務系"])
def test_the_service_refuses_a_mynumber_host(tmp_path: Path, declared: str) -> None:
    (tmp_path / "segment").write_text(declared + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAKEHASHI_")}
    env["KAKEHASHI_SEGMENT_FILE"] = str(tmp_path / "segment")
    done = subprocess.run([sys.executable, "-m", "sanitizer", "serve", "--socket", str(tmp_path / "s.sock"),
                           "--keys", str(tmp_path / "keys")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, done.stderr
    assert "segment_mismatch" in done.stderr and "起動しません" in done.stderr
    assert not (tmp_path / "s.sock").exists()
