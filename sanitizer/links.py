"""The one link policy shared by every rebuilder: http, https and mailto only.

In 三層分離 a link in a document is at best useless on an LGWAN terminal and at worst a
way out (file:, UNC paths leak NTLM hashes; javascript:, ms-msdt: and friends run code).
Plain web and mail links are kept because they only act when a person clicks them.
"""

from __future__ import annotations

import re

_SAFE_URI_RE = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
# Browsers drop ASCII whitespace and controls inside a scheme ("java\tscript:"), so the
# check compares the same way.
_URI_BLANKS_RE = re.compile(r"[\x00-\x20\x7f]+")


def is_safe_link(raw: bytes | str) -> bool:
    """True for http, https and mailto URIs; false for everything else, relative ones included."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return bool(_SAFE_URI_RE.match(_URI_BLANKS_RE.sub("", text)))
