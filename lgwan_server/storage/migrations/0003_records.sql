-- 0003: 公文書管理 — retention classes, 行政文書 marks, legal holds, disposal with tombstones.

-- Each organisation's own retention table (its 文書管理規程), seeded with 1年未満/1年/3年/5年/10年/30年.
CREATE TABLE retention_classes (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- owning organisation
    code            TEXT NOT NULL,                -- stable code, e.g. '1y', 'lt1y'
    label           TEXT NOT NULL,                -- shown to staff, e.g. 保存期間1年
    years           INTEGER NOT NULL,             -- retention in years; 0 = 1年未満 (no fixed minimum)
    sort_order      INTEGER NOT NULL DEFAULT 0,   -- display order
    active          INTEGER NOT NULL DEFAULT 1,   -- 0 = no longer offered (existing marks keep it)
    UNIQUE (org_id, code)
);

-- The room's designated 文書管理者 (records manager), notified when something is marked.
CREATE TABLE room_records_officers (
    room_id         INTEGER PRIMARY KEY REFERENCES rooms(id),  -- the room
    staff_id        INTEGER NOT NULL REFERENCES staff(id),     -- its 文書管理者
    assigned_by     INTEGER NOT NULL REFERENCES staff(id),     -- who designated them
    assigned_at     TEXT NOT NULL                               -- when
);

-- A message (scope 'message') or a whole thread (scope 'thread', on the root) marked as 行政文書.
CREATE TABLE record_marks (
    id              INTEGER PRIMARY KEY,          -- internal id
    message_id      INTEGER NOT NULL UNIQUE REFERENCES messages(id),  -- the message or thread root
    room_id         INTEGER NOT NULL REFERENCES rooms(id),            -- its room (for listing)
    scope           TEXT NOT NULL,                -- 'message' or 'thread' (root and every reply)
    class_id        INTEGER NOT NULL REFERENCES retention_classes(id),  -- retention class
    retain_until    TEXT NOT NULL,                -- last JST date of retention ('YYYY-MM-DD'); counted from 翌年度4月1日
    title           TEXT NOT NULL DEFAULT '',     -- 件名 given when marking
    marked_by       INTEGER NOT NULL REFERENCES staff(id),  -- who marked it
    marked_at       TEXT NOT NULL,                -- when
    disposed_at     TEXT                          -- set when disposal removed it (see record_tombstones)
);
CREATE INDEX record_marks_room ON record_marks(room_id);
CREATE INDEX record_marks_due ON record_marks(retain_until) WHERE disposed_at IS NULL;

-- 訴訟ホールド等: while active, nothing in its scope may be disposed of, whatever the class.
CREATE TABLE legal_holds (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- organisation
    room_id         INTEGER REFERENCES rooms(id), -- held room (NULL = the message only)
    message_id      INTEGER REFERENCES messages(id), -- held message/thread root (NULL = the whole room)
    reason          TEXT NOT NULL,                -- why (e.g. 情報公開請求 第12号, 訴訟)
    placed_by       INTEGER NOT NULL REFERENCES staff(id),  -- who placed it
    placed_at       TEXT NOT NULL,                -- when
    released_by     INTEGER REFERENCES staff(id), -- who released it
    released_at     TEXT                          -- NULL while active
);
CREATE INDEX legal_holds_active ON legal_holds(org_id) WHERE released_at IS NULL;

-- Disposal: proposed by one person, approved by another, then executed.
CREATE TABLE disposals (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- organisation
    state           TEXT NOT NULL,                -- 'proposed', 'approved', 'executed', 'rejected'
    proposed_by     INTEGER NOT NULL REFERENCES staff(id),  -- who listed the items
    proposed_at     TEXT NOT NULL,                -- when
    approved_by     INTEGER REFERENCES staff(id), -- the authorised approver (never the proposer)
    approved_at     TEXT,                         -- when
    executed_at     TEXT                          -- when the items were removed
);
CREATE TABLE disposal_items (
    disposal_id     INTEGER NOT NULL REFERENCES disposals(id),    -- the batch
    mark_id         INTEGER NOT NULL REFERENCES record_marks(id), -- the expired mark
    PRIMARY KEY (disposal_id, mark_id)
) WITHOUT ROWID;

-- What a disposal removed, and under whose approval (the text itself is gone).
CREATE TABLE record_tombstones (
    id              INTEGER PRIMARY KEY,          -- internal id
    disposal_id     INTEGER NOT NULL REFERENCES disposals(id),  -- the approved batch
    message_id      INTEGER NOT NULL,             -- removed message (row kept, body emptied)
    room_id         INTEGER NOT NULL,             -- its room
    sender_id       INTEGER NOT NULL,             -- its author
    sender_affiliation TEXT NOT NULL,             -- 所属 at sending
    created_at      TEXT NOT NULL,                -- when it was sent
    body_sha256     TEXT NOT NULL,                -- SHA-256 of the removed text (proves what was removed)
    class_code      TEXT NOT NULL,                -- retention class it was kept under
    retain_until    TEXT NOT NULL,                -- its expiry date
    approved_by     INTEGER NOT NULL,             -- approver
    disposed_at     TEXT NOT NULL                 -- when
);
