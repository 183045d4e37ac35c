"""The host's segment declaration (三層分離): each tier runs only on the segment it belongs to.

The network admin declares, once per host, which of the three segments it sits in by writing
``/etc/kakehashi/segment`` (one line: ``lgwan`` / ``LGWAN接続系``, ``internet`` /
``インターネット接続系`` or ``mynumber`` / ``マイナンバー利用事務系``; ``#`` starts a comment). At start-up
(``serve``, ``migrate``) every tier compares that declaration with where it may run:

* the LGWAN server and its data stores: LGWAN接続系 only;
* the internet relay: インターネット接続系 only;
* the sanitizer service: either (the relay's host runs one, the LGWAN side its own re-check);
* nothing runs on a マイナンバー利用事務系 host.

A declaration that does not fit refuses to start (exit 78, EX_CONFIG) with a message in Japanese
and English. A missing declaration is refused when ``KAKEHASHI_REQUIRE_SEGMENT=1`` (the units in
``deploy/`` set it) and otherwise logged as a warning, so a developer's laptop and the demo run.
``KAKEHASHI_SEGMENT_FILE`` points elsewhere (tests, unusual layouts). Acceptance statement 1.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_DECLARATION = Path("/etc/kakehashi/segment")
EX_CONFIG = 78

SEGMENT_NAMES = {"lgwan": "LGWAN接続系", "internet": "インターネット接続系", "mynumber": "マイナンバー利用事務系"}
_ALIASES = {**{k: k for k in SEGMENT_NAMES}, **{v: k for k, v in SEGMENT_NAMES.items()}}

# Where each tier may run.
ALLOWED: dict[str, frozenset[str]] = {
    "lgwan_server": frozenset({"lgwan"}),
    "internet_relay": frozenset({"internet"}),
    "sanitizer": frozenset({"lgwan", "internet"}),
}


@dataclass(frozen=True)
class SegmentError(Exception):
    code: str          # stable: segment_mismatch, segment_undeclared, segment_unreadable, segment_unknown
    message: str       # Japanese
    message_en: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message} / {self.message_en}"


def parse_declaration(text: str) -> str:
    """The segment key a declaration file names; SegmentError if it names none or several."""
    values = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    values = [v for v in values if v]
    key = (_ALIASES.get(values[0].lower()) or _ALIASES.get(values[0])) if len(values) == 1 else None
    if key is None:
        shown = " / ".join(values)[:80]
        raise SegmentError("segment_unknown",
                           f"セグメント宣言「{shown}」を解釈できません。lgwan・internet・mynumber のいずれか1行を書いてください。",
                           f"cannot read the segment declaration {shown!r}: write one line, lgwan, internet or mynumber")
    return key


def declaration_path() -> Path:
    return Path(os.environ.get("KAKEHASHI_SEGMENT_FILE") or DEFAULT_DECLARATION)


def check_segment(tier: str, path: Path | None = None, *, required: bool | None = None) -> str | None:
    """Return the declared segment if ``tier`` may run here; raise SegmentError if it may not."""
    allowed = ALLOWED[tier]
    path = path or declaration_path()
    if required is None:
        required = os.environ.get("KAKEHASHI_REQUIRE_SEGMENT", "") not in ("", "0", "false")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise SegmentError("segment_undeclared",
                               f"このホストのセグメントが宣言されていません（{path}）。ネットワーク管理者が宣言してから起動してください。",
                               f"this host's segment is not declared ({path}); the network admin must declare it first") from None
        log.warning("segment not declared; set KAKEHASHI_REQUIRE_SEGMENT=1 in production",
                    extra={"path": str(path), "tier": tier})
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SegmentError("segment_unreadable", f"セグメント宣言 {path} を読めません。",
                           f"cannot read the segment declaration {path}: {exc}") from None
    segment = parse_declaration(text)
    if segment not in allowed:
        where = "・".join(SEGMENT_NAMES[s] for s in sorted(allowed))
        raise SegmentError("segment_mismatch",
                           f"{tier} は{where}でのみ動作します。このホストは{SEGMENT_NAMES[segment]}と宣言されているため起動しません。",
                           f"{tier} runs only on {' or '.join(sorted(allowed))}; this host is declared {segment}, so it will not start")
    return segment


def refuse_wrong_segment(tier: str, prog: str) -> int | None:
    """For a tier's entry point: ``EX_CONFIG`` (reason printed) if ``tier`` may not run here, else None."""
    try:
        check_segment(tier)
    except SegmentError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EX_CONFIG
    return None
