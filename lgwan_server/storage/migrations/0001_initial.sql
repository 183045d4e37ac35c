-- 0001: organisations, staff, sessions, rooms, messages, receipts, files, events, search, audit.
-- Timestamps are ISO 8601 UTC text ("2026-04-01T00:00:00.000Z"), which sorts correctly as text.

CREATE TABLE organisations (
    id            INTEGER PRIMARY KEY,            -- internal id
    code          TEXT NOT NULL UNIQUE,           -- short stable code, e.g. 地方公共団体コード "282014"
    name          TEXT NOT NULL,                  -- display name, e.g. 神戸市
    ip_allowlist  TEXT NOT NULL DEFAULT '[]',     -- JSON list of CIDRs staff may connect from; [] = any
    mfa_policy    TEXT NOT NULL DEFAULT 'admins', -- 'admins' (TOTP required for admins) or 'all'
    created_at    TEXT NOT NULL                   -- when the organisation was created
);

CREATE TABLE departments (
    id            INTEGER PRIMARY KEY,            -- internal id
    org_id        INTEGER NOT NULL REFERENCES organisations(id),  -- owning organisation
    code          TEXT NOT NULL,                  -- HR system's department code, unique per org
    parent_id     INTEGER REFERENCES departments(id),  -- enclosing 部 or 課; NULL for a top-level 部
    name          TEXT NOT NULL,                  -- e.g. 総務課
    kind          TEXT NOT NULL DEFAULT 'ka',     -- 'bu' (部・局), 'ka' (課・室), 'kakari' (係・担当)
    sort_order    INTEGER NOT NULL DEFAULT 0,     -- display order among siblings
    active        INTEGER NOT NULL DEFAULT 1,     -- 0 when abolished in a reorganisation (kept for history)
    UNIQUE (org_id, code)
);
CREATE INDEX departments_parent ON departments(parent_id);

CREATE TABLE ranks (
    id            INTEGER PRIMARY KEY,            -- internal id
    org_id        INTEGER NOT NULL REFERENCES organisations(id),  -- owning organisation
    code          TEXT NOT NULL,                  -- HR system's 職層 code
    name          TEXT NOT NULL,                  -- e.g. 課長級
    level         INTEGER NOT NULL,               -- 1 = highest (市長); used for ordering and rank rooms
    UNIQUE (org_id, code)
);

CREATE TABLE staff (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- home organisation
    login           TEXT NOT NULL UNIQUE,         -- login name, unique on the server
    employee_no     TEXT,                         -- 職員番号 from HR, unique per org (import key)
    display_name    TEXT NOT NULL,                -- 氏名 as shown
    kana            TEXT NOT NULL DEFAULT '',     -- よみがな, for sorting and search
    department_id   INTEGER REFERENCES departments(id),  -- current 所属
    rank_id         INTEGER REFERENCES ranks(id), -- current 職層
    title           TEXT NOT NULL DEFAULT '',     -- 役職名, e.g. 課長補佐
    role            TEXT NOT NULL DEFAULT 'staff',-- 'staff', 'org_admin', 'server_admin', 'auditor'
    status          TEXT NOT NULL DEFAULT 'active', -- 'active', 'suspended' (休職・停止), 'retired' (退職)
    password_hash   TEXT,                         -- argon2id encoded hash; NULL = cannot log in
    password_changed_at TEXT,                     -- when the password was last set
    totp_secret     TEXT,                         -- base32 TOTP secret once enrolment is confirmed
    totp_pending    TEXT,                         -- secret offered during enrolment, not yet confirmed
    totp_last_step  INTEGER NOT NULL DEFAULT 0,   -- last accepted TOTP time step (replay protection)
    failed_logins   INTEGER NOT NULL DEFAULT 0,   -- consecutive failures since the last success
    locked_until    TEXT,                         -- lockout end after too many failures
    created_at      TEXT NOT NULL,                -- account creation
    status_changed_at TEXT,                       -- last suspension, retirement or reactivation
    UNIQUE (org_id, employee_no)
);
CREATE INDEX staff_department ON staff(department_id);
CREATE INDEX staff_rank ON staff(rank_id);

-- 人事異動: every assignment a person has held, with the date it took effect.
CREATE TABLE staff_assignments (
    id              INTEGER PRIMARY KEY,          -- internal id
    staff_id        INTEGER NOT NULL REFERENCES staff(id),  -- who
    department_id   INTEGER REFERENCES departments(id),     -- 所属 from effective_date
    rank_id         INTEGER REFERENCES ranks(id),           -- 職層 from effective_date
    title           TEXT NOT NULL DEFAULT '',     -- 役職名 from effective_date
    effective_date  TEXT NOT NULL,                -- JST calendar date 'YYYY-MM-DD' the change takes effect
    applied_at      TEXT,                         -- when it was applied to staff; NULL = scheduled
    created_by      INTEGER REFERENCES staff(id), -- admin who entered it (NULL for an import)
    created_at      TEXT NOT NULL                 -- when it was entered
);
CREATE INDEX staff_assignments_pending ON staff_assignments(applied_at, effective_date);
CREATE INDEX staff_assignments_staff ON staff_assignments(staff_id, effective_date);

CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY,          -- internal id
    token_hash      TEXT NOT NULL UNIQUE,         -- SHA-256 of the cookie token (the token itself is never stored)
    staff_id        INTEGER NOT NULL REFERENCES staff(id),  -- owner
    csrf_token      TEXT NOT NULL,                -- sent back by the client in X-CSRF-Token
    mfa_pending     INTEGER NOT NULL DEFAULT 0,   -- 1 = may only enrol TOTP or log out
    created_at      TEXT NOT NULL,                -- login time (absolute timeout counts from here)
    last_seen_at    TEXT NOT NULL,                -- last request (idle timeout counts from here)
    source_ip       TEXT NOT NULL,                -- address at login
    user_agent      TEXT NOT NULL DEFAULT ''      -- browser at login, for the admin's session list
);
CREATE INDEX sessions_staff ON sessions(staff_id);

CREATE TABLE rooms (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- home organisation
    kind            TEXT NOT NULL,                -- 'department' (縦), 'rank' (横), 'project', 'dm', 'announcement'
    name            TEXT NOT NULL,                -- display name; for DMs generated by the client
    topic           TEXT NOT NULL DEFAULT '',     -- description
    department_id   INTEGER REFERENCES departments(id),  -- kind='department': the 部署 it mirrors
    rank_id         INTEGER REFERENCES ranks(id), -- kind='rank': the 職層 it mirrors
    dm_key          TEXT UNIQUE,                  -- kind='dm': sorted member ids, so a 1:1 DM is unique
    crossing_policy TEXT NOT NULL DEFAULT 'lgwan_only', -- 'lgwan_only', 'staff_mobile', 'guests'
    last_seq        INTEGER NOT NULL DEFAULT 0,   -- seq of the newest message (for unread counts)
    archived        INTEGER NOT NULL DEFAULT 0,   -- 1 = read-only history
    created_by      INTEGER REFERENCES staff(id), -- creator (NULL for generated rooms)
    created_at      TEXT NOT NULL,                -- creation time
    UNIQUE (org_id, kind, department_id),
    UNIQUE (org_id, kind, rank_id)
);

-- Organisations other than the home one that have agreed to let their staff join a room.
CREATE TABLE room_orgs (
    room_id         INTEGER NOT NULL REFERENCES rooms(id),  -- the shared room
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- the guest organisation
    approved_by     INTEGER NOT NULL REFERENCES staff(id),  -- that organisation's admin who allowed it
    approved_at     TEXT NOT NULL,                -- when
    PRIMARY KEY (room_id, org_id)
);

CREATE TABLE room_members (
    room_id         INTEGER NOT NULL REFERENCES rooms(id),  -- the room
    staff_id        INTEGER NOT NULL REFERENCES staff(id),  -- the member
    role            TEXT NOT NULL DEFAULT 'member', -- 'owner', 'member', 'readonly'
    auto            INTEGER NOT NULL DEFAULT 0,   -- 1 = managed from the org tree (department/rank rooms)
    last_read_seq   INTEGER NOT NULL DEFAULT 0,   -- read cursor: every message with seq <= this is read
    last_read_at    TEXT,                         -- when the cursor last moved
    joined_at       TEXT NOT NULL,                -- when the member joined
    PRIMARY KEY (room_id, staff_id)
) WITHOUT ROWID;
CREATE INDEX room_members_staff ON room_members(staff_id);
CREATE INDEX room_members_cursor ON room_members(room_id, last_read_seq);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,          -- global id
    room_id         INTEGER NOT NULL REFERENCES rooms(id),  -- the room
    seq             INTEGER NOT NULL,             -- 1, 2, 3… within the room (read cursors compare this)
    thread_root_id  INTEGER REFERENCES messages(id), -- the thread's first message; NULL for a top-level post
    sender_id       INTEGER NOT NULL REFERENCES staff(id),  -- author
    sender_affiliation TEXT NOT NULL,             -- 所属 at the time of sending, e.g. "総務部 総務課" (行政文書 export)
    body            TEXT NOT NULL,                -- current plain-text body ('' once deleted)
    important       INTEGER NOT NULL DEFAULT 0,   -- 1 = 重要 flag
    mention_room    INTEGER NOT NULL DEFAULT 0,   -- 1 = @room (everyone in the room)
    client_msg_id   TEXT,                         -- client's idempotency key; a retry returns the first result
    created_at      TEXT NOT NULL,                -- when it was posted
    edited_at       TEXT,                         -- last edit; history in message_edits
    deleted_at      TEXT,                         -- tombstone time; the row stays
    deleted_by      INTEGER REFERENCES staff(id), -- who deleted it
    reply_count     INTEGER NOT NULL DEFAULT 0,   -- replies in the thread (roots only)
    UNIQUE (room_id, seq),
    UNIQUE (sender_id, client_msg_id)
);
CREATE INDEX messages_thread ON messages(thread_root_id, id);

CREATE TABLE message_edits (
    id              INTEGER PRIMARY KEY,          -- internal id
    message_id      INTEGER NOT NULL REFERENCES messages(id),  -- the edited message
    version         INTEGER NOT NULL,             -- 1 = original text, 2 = after the first edit…
    body            TEXT NOT NULL,                -- the text of that version
    edited_by       INTEGER NOT NULL REFERENCES staff(id),  -- who wrote that version
    created_at      TEXT NOT NULL,                -- when that version was written
    UNIQUE (message_id, version)
);

CREATE TABLE mentions (
    message_id      INTEGER NOT NULL REFERENCES messages(id),  -- the message
    staff_id        INTEGER NOT NULL REFERENCES staff(id),     -- who is mentioned
    PRIMARY KEY (message_id, staff_id)
) WITHOUT ROWID;
CREATE INDEX mentions_staff ON mentions(staff_id, message_id);

CREATE TABLE reactions (
    message_id      INTEGER NOT NULL REFERENCES messages(id),  -- the message
    staff_id        INTEGER NOT NULL REFERENCES staff(id),     -- who reacted
    code            TEXT NOT NULL,                -- stamp code from the server's allow-list, e.g. 'ok', 'thanks'
    created_at      TEXT NOT NULL,                -- when
    PRIMARY KEY (message_id, staff_id, code)
) WITHOUT ROWID;

CREATE TABLE pins (
    room_id         INTEGER NOT NULL REFERENCES rooms(id),     -- the room
    message_id      INTEGER NOT NULL REFERENCES messages(id),  -- the pinned message
    pinned_by       INTEGER NOT NULL REFERENCES staff(id),     -- who pinned it
    pinned_at       TEXT NOT NULL,                -- when
    PRIMARY KEY (room_id, message_id)
) WITHOUT ROWID;

-- Content-addressed blobs on disk (files/ab/cdef…); one row per distinct content.
CREATE TABLE blobs (
    sha256          TEXT PRIMARY KEY,             -- hex digest, also the file name on disk
    size            INTEGER NOT NULL,             -- bytes
    mime            TEXT NOT NULL,                -- type detected by libmagic, never the client's claim
    created_at      TEXT NOT NULL                 -- first upload
) WITHOUT ROWID;

CREATE TABLE attachments (
    id              INTEGER PRIMARY KEY,          -- internal id
    room_id         INTEGER NOT NULL REFERENCES rooms(id),  -- the room it was posted in
    message_id      INTEGER REFERENCES messages(id), -- the message that carries it
    uploader_id     INTEGER NOT NULL REFERENCES staff(id),  -- who uploaded it
    filename        TEXT NOT NULL,                -- cleaned display name (no path, no controls)
    sha256          TEXT NOT NULL REFERENCES blobs(sha256), -- content
    origin          TEXT NOT NULL DEFAULT 'lgwan',-- 'lgwan' (staff upload) or 'sanitized' (from the relay, rebuilt)
    created_at      TEXT NOT NULL                 -- when
);
CREATE INDEX attachments_message ON attachments(message_id);

-- Every state change a client may need, in commit order. WebSocket clients resume from an id.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT, -- monotonic event id (AUTOINCREMENT: never reused)
    room_id         INTEGER REFERENCES rooms(id), -- room the event belongs to (authorization); NULL = staff_id only
    staff_id        INTEGER REFERENCES staff(id), -- for personal events (membership, session end): the recipient
    type            TEXT NOT NULL,                -- 'message.new', 'message.edit', 'receipt', 'member.join'…
    payload         TEXT NOT NULL,                -- JSON sent to clients as is
    created_at      TEXT NOT NULL                 -- when
);
CREATE INDEX events_room ON events(room_id, id);
CREATE INDEX events_staff ON events(staff_id, id);

-- Full-text search over message bodies; the trigram tokenizer works for Japanese without a
-- morphological analyser (queries of 3+ characters; shorter ones fall back to LIKE).
CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='id', tokenize='trigram');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
END;

-- 操作ログ: append-only and hash-chained. hash = SHA-256(prev_hash || canonical JSON of the row).
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,          -- sequence in the chain
    at              TEXT NOT NULL,                -- UTC time (shown in JST)
    org_id          INTEGER,                      -- actor's organisation (NULL for system actions)
    actor_id        INTEGER,                      -- staff id (NULL for system or anonymous)
    actor_login     TEXT NOT NULL DEFAULT '',     -- login as given (failed logins name unknown users too)
    actor_affiliation TEXT NOT NULL DEFAULT '',   -- 所属 at the time of the action
    source_ip       TEXT NOT NULL DEFAULT '',     -- client address
    action          TEXT NOT NULL,                -- stable action code, e.g. 'auth.login', 'message.delete'
    target_type     TEXT NOT NULL DEFAULT '',     -- 'room', 'message', 'staff'…
    target_id       TEXT NOT NULL DEFAULT '',     -- id of the target
    outcome         TEXT NOT NULL DEFAULT 'ok',   -- 'ok', 'denied', 'failed'
    detail          TEXT NOT NULL DEFAULT '{}',   -- JSON with action-specific fields (never message text)
    prev_hash       TEXT NOT NULL,                -- hash of the previous entry ('0'*64 for the first)
    hash            TEXT NOT NULL                 -- this entry's hash
);
CREATE INDEX audit_log_actor ON audit_log(actor_id, id);
CREATE INDEX audit_log_action ON audit_log(action, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
