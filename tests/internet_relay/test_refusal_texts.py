"""Every reason LGWAN can give for refusing a guest's or phone's post has words on the relay: Japanese
(やさしい日本語, from the server) and English (the page's own table), so an English page never shows
a Japanese reason and a new refusal code cannot ship without a text."""

from __future__ import annotations

import re
from pathlib import Path

from internet_relay.services.chat import REFUSALS

ROOT = Path(__file__).resolve().parents[2]
# Refusals of other envelopes (enrolment, devices, 安否確認) and the bridge's own bookkeeping: a poster never sees them.
NOT_A_POST = {"duplicate_origin", "kind_not_handled", "bad_account", "account_closed",
              "privacy_notice_not_acknowledged", "not_safety_manager", "safety_check_unknown", "not_target",
              "safety_closed", "invalid_answer"}


def refusal_codes() -> set[str]:
    codes: set[str] = set()
    for name in ("inbox.py", "files.py"):
        text = (ROOT / "lgwan_server" / "bridge" / name).read_text(encoding="utf-8")
        codes.update(re.findall(r'Refused\("([a-z_]+)"', text))
    return codes


def page_tables() -> tuple[dict[str, str], dict[str, str]]:
    text = (ROOT / "internet_relay" / "static" / "i18n.js").read_text(encoding="utf-8")
    en_start = text.index("\nconst en = {")

    def parse(part: str) -> dict[str, str]:
        return dict(re.findall(r'"(refused\.[a-z_]+)": "([^"]+)"', part))
    return parse(text[:en_start]), parse(text[en_start:])


def test_every_post_refusal_has_japanese_and_english_words() -> None:
    codes = refusal_codes() - NOT_A_POST
    assert {"not_member", "room_archived", "announcement_owner_only", "empty_message"} <= codes   # the scan works
    ja, en = page_tables()
    for code in sorted(codes | {"file_refused"}):
        assert REFUSALS.get(code), f"no Japanese text for {code} in internet_relay/services/chat.py REFUSALS"
        assert ja.get(f"refused.{code}") == REFUSALS[code], f"ja table and server differ for {code}"
        assert en.get(f"refused.{code}"), f"no English text for {code} in internet_relay/static/i18n.js"
        assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", en[f"refused.{code}"]), code
    assert ja.get("refused.other") and en.get("refused.other")
