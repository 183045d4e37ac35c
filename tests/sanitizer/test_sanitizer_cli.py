"""``python -m sanitizer`` as a subprocess: exit codes, files written (or not), report."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sanitizer_samples import (
    DOCM_MAIN,
    docx,
    encrypted_pdf,
    hostile_pdf_everywhere,
    para,
    pdf_bytes,
    pdf_document,
)

MS06 = "http://schemas.microsoft.com/office/2006/relationships/"


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sanitizer", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rebuilt_file_and_report(tmp_path: Path) -> None:
    source = tmp_path / "hostile.pdf"
    source.write_bytes(hostile_pdf_everywhere())
    done = run(source, "-o", tmp_path / "clean.pdf", "--report", tmp_path / "report.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output = (tmp_path / "clean.pdf").read_bytes()
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "rebuilt" and report["code"] == "ok"
    assert report["input"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert report["output"]["sha256"] == hashlib.sha256(output).hexdigest()
    items = {item["item"]: item for item in report["removed"]}
    assert items["javascript"]["ja"] == "JavaScript" and items["javascript"]["count"] >= 5
    assert items["embedded_file"]["ja"] == "埋め込みファイル"
    assert "JavaScript ×" in report["summary"]["ja"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.pdf", "hostile.pdf", "report.json"]


def test_macro_enabled_input_reports_the_new_extension(tmp_path: Path) -> None:
    source = tmp_path / "申請書.docm"
    source.write_bytes(
        docx(para("本文"), main_type=DOCM_MAIN, doc_rels=[("rIdVba", MS06 + "vbaProject", "vbaProject.bin", False)],
             parts={"word/vbaProject.bin": b"\x00" * 32}, defaults={"bin": "application/vnd.ms-office.vbaProject"})
    )  # fmt: skip
    done = run(source, "-o", tmp_path / "out.docm", "--report", tmp_path / "r.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["output"]["extension"] == "docx" and report["output"]["name"] == "申請書.docx"
    assert [i["item"] for i in report["removed"]] == ["macro"] and report["removed"][0][
        "ja"
    ] == "マクロ (VBA)"
    assert ".docx" in done.stderr  # the caller is told the content is now .docx


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("locked.pdf", encrypted_pdf("secret"), "pdf_encrypted"),
        ("macro.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00" + b"\x00" * 4000, "legacy_office"),
        ("fake.pdf", docx(para("x")), "type_mismatch"),
        ("script.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>', "active_markup"),
    ],
)  # fmt: skip
def test_refusal_writes_no_output(tmp_path: Path, name: str, data: bytes, code: str) -> None:
    source = tmp_path / name
    source.write_bytes(data)
    done = run(source, "-o", tmp_path / "out.bin", "--report", tmp_path / "report.json", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert not (tmp_path / "out.bin").exists()
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "refused" and report["code"] == code and report["output"] is None
    assert report["message"]["ja"] and report["message"]["en"]
    assert code in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "report.json"])  # no partial files


def test_limit_breach_is_a_refusal_without_partial_files(tmp_path: Path) -> None:
    source = tmp_path / "big.pdf"
    source.write_bytes(pdf_bytes(pdf_document(pages=300)))
    # A 1 ms wall-clock limit cannot be met (two worker processes per file), so this is
    # deterministic; RLIMIT_AS is not, since a worker may still have free heap to use.
    done = run(
        source,
        "-o",
        tmp_path / "out.pdf",
        "--timeout",
        "0.001",
        "--report",
        tmp_path / "r.json",
        cwd=tmp_path,
    )
    assert done.returncode == 3
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["code"] == "limit_time"
    (tmp_path / "r.json").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pdf"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["missing.pdf", "-o", "out.pdf"],
        ["in.pdf"],
        ["in.pdf", "-o", "no/such/dir/out.pdf"],
        ["in.pdf", "-o", "out.pdf", "--timeout", "-1"],
        ["in.pdf", "-o", "same.json", "--report", "same.json"],
        ["in.pdf", "-o", "out.pdf", "--bogus"],
    ],
    ids=[
        "no-args",
        "missing-input",
        "no-output",
        "no-output-dir",
        "bad-timeout",
        "same-paths",
        "unknown-flag",
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "in.pdf").write_bytes(pdf_bytes(pdf_document()))
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert not (tmp_path / "out.pdf").exists()


def test_console_script_is_installed() -> None:
    script = shutil.which("kakehashi-sanitize", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("package not installed in this environment (pip install -e .)")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "INPUT" in done.stdout.upper()
