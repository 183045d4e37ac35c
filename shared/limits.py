"""Every size, count and time limit as a named constant.

The receiver re-checks everything the sender checked, so both tiers import these.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 10_000          # a chat message body, after normalisation
MAX_DISPLAY_NAME_CHARS = 100
MAX_ROOM_NAME_CHARS = 100
MAX_ROOM_TOPIC_CHARS = 1_000
MAX_FILENAME_BYTES = 255            # UTF-8 bytes, as most filesystems allow
MAX_MENTIONS_PER_MESSAGE = 50
MAX_DM_MEMBERS = 20                 # small-group DMs; larger groups are project rooms
MAX_ROOM_MEMBERS_PER_REQUEST = 500
MAX_JSON_BODY_BYTES = 256 * 1024    # a JSON API request
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # a staff file inside LGWAN
MAX_CSV_IMPORT_BYTES = 20 * 1024 * 1024
MAX_ENVELOPE_BYTES = 64 * 1024      # one signed envelope between the tiers
MAX_WS_MESSAGE_BYTES = 64 * 1024    # a client→server WebSocket frame
WS_HEARTBEAT_SECONDS = 30.0
WS_SEND_QUEUE = 2_000               # events buffered for one slow socket before it is dropped
MAX_PAGE_SIZE = 200                 # list endpoints
MAX_SEARCH_QUERY_CHARS = 200
MAX_REACTION_CODE_CHARS = 32
MAX_PDF_PAGES = 2_000
MAX_XLSX_CELLS = 2_000_000
