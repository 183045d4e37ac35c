"""shared.segment: reading the host's segment declaration and who may run where (acceptance 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.segment import SegmentError, check_segment, parse_declaration


@pytest.mark.parametrize(("text", "segment"), [
    ("lgwan\n", "lgwan"), ("LGWAN接続系", "lgwan"), ("# 2026-04 ネットワーク管理者\nInternet\n", "internet"),
    ("インターネット接続系  # 庁舎B", "internet"), ("mynumber", "mynumber"), ("マイナンバー利用事務系\n\n", "mynumber"),
])
def test_declarations_in_either_language(text: str, segment: str) -> None:
    assert parse_declaration(text) == segment


@pytest.mark.parametrize("text", ["", "# nothing\n", "dmz", "lgwan\ninternet", "LGWAN"[:2]])
def test_unreadable_declarations_are_refused(text: str) -> None:
    with pytest.raises(SegmentError) as err:
        parse_declaration(text)
    assert err.value.code == "segment_unknown"


@pytest.mark.parametrize(("tier", "declared", "ok"), [
    ("lgwan_server", "lgwan", True), ("lgwan_server", "internet", False), ("lgwan_server", "mynumber", False),
    ("internet_relay", "internet", True), ("internet_relay", "lgwan", False), ("internet_relay", "mynumber", False),
    ("sanitizer", "lgwan", True), ("sanitizer", "internet", True), ("sanitizer", "mynumber", False),
])
def test_each_tier_runs_only_where_it_belongs(tmp_path: Path, tier: str, declared: str, ok: bool) -> None:
    path = tmp_path / "segment"
    path.write_text(declared + "\n", encoding="utf-8")
    if ok:
        assert check_segment(tier, path, required=True) == declared
    else:
        with pytest.raises(SegmentError) as err:
            check_segment(tier, path, required=True)
        assert err.value.code == "segment_mismatch"
        assert "起動しません" in err.value.message and "will not start" in err.value.message_en


def test_a_missing_declaration_is_refused_only_when_required(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    assert check_segment("lgwan_server", missing, required=False) is None
    with pytest.raises(SegmentError) as err:
        check_segment("lgwan_server", missing, required=True)
    assert err.value.code == "segment_undeclared"
