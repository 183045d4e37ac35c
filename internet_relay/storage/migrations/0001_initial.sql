-- 0001: the relay's own, deliberately small store. It holds only what crossing rooms need, text
-- for a bounded window (retention.messages), and can be wiped and rebuilt from the LGWAN side.
-- Timestamps are ISO 8601 UTC text ("2026-04-01T00:00:00.000Z").

-- Facts about this relay instance.
CREATE TABLE relay_meta (
    key             TEXT PRIMARY KEY,             -- 'epoch': random id of this database (new after a wipe)
    value           TEXT NOT NULL                 -- its value
);

-- One row: the state of the queue link.
CREATE TABLE link_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1), -- always 1
    out_last_seq    INTEGER NOT NULL DEFAULT 0,   -- seq given to the newest relay→LGWAN envelope
    out_acked_seq   INTEGER NOT NULL DEFAULT 0,   -- highest relay→LGWAN seq LGWAN confirmed applied
    in_applied_seq  INTEGER NOT NULL DEFAULT 0,   -- highest LGWAN→relay seq applied here (same transaction as the apply)
    updated_at      TEXT NOT NULL                 -- last change
);
INSERT INTO link_state(id, updated_at) VALUES (1, '1970-01-01T00:00:00.000Z');

-- relay→LGWAN envelopes, written in the same transaction as the post, receipt or enrolment.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY,          -- per-direction sequence number, in commit order
    envelope_id     TEXT NOT NULL UNIQUE,         -- 32 hex; the same on every retransmission
    kind            TEXT NOT NULL,                -- envelope kind (shared/envelope.py allow-list)
    payload         TEXT NOT NULL,                -- canonical JSON of the payload; sealed at send time
    created_at      TEXT NOT NULL,                -- when it was queued (queue age, lag)
    acked_at        TEXT                          -- when LGWAN confirmed it; pruned after queue.keep_acked
);
CREATE INDEX outbox_acked ON outbox(acked_at);
-- The newest seq follows the outbox in the same statement (one round trip per queued envelope).
CREATE TRIGGER outbox_last_seq AFTER INSERT ON outbox BEGIN
    UPDATE link_state SET out_last_seq = NEW.seq, updated_at = NEW.created_at WHERE id = 1;
END;

-- LGWAN→relay envelopes already taken: the replay/rewind check.
CREATE TABLE inbox (
    seq             INTEGER PRIMARY KEY,          -- LGWAN's sequence number
    envelope_id     TEXT NOT NULL,                -- its id
    kind            TEXT NOT NULL,                -- envelope kind
    outcome         TEXT NOT NULL,                -- 'applied' or 'rejected:<code>'
    received_at     TEXT NOT NULL                 -- when; pruned after queue.keep_acked
);
-- Recording an envelope advances the applied seq, in the apply's transaction.
CREATE TRIGGER inbox_applied AFTER INSERT ON inbox BEGIN
    UPDATE link_state SET in_applied_seq = NEW.seq, updated_at = NEW.received_at WHERE id = 1;
END;

-- Rooms whose policy lets them cross (staff_mobile, guests). lgwan_only rooms never arrive here.
CREATE TABLE rooms (
    id              INTEGER PRIMARY KEY,          -- the LGWAN room id
    name            TEXT NOT NULL,                -- display name
    policy          TEXT NOT NULL,                -- 'staff_mobile' or 'guests'
    updated_at      TEXT NOT NULL                 -- last change
);

-- Members of those rooms: display name and 所属 only.
CREATE TABLE members (
    room_id         INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE, -- the room
    member          TEXT NOT NULL,                -- 'g:<id>' (guest) or 's:<id>' (staff)
    display_name    TEXT NOT NULL,                -- name as shown
    affiliation     TEXT NOT NULL,                -- 所属 (a guest's organisation)
    last_read_seq   INTEGER NOT NULL DEFAULT 0,   -- read cursor (既読)
    PRIMARY KEY (room_id, member)
) WITHOUT ROWID;
CREATE INDEX members_member ON members(member);

-- Text of crossing rooms, as confirmed by LGWAN, for retention.messages.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,          -- the LGWAN message id
    room_id         INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE, -- the room
    seq             INTEGER NOT NULL,             -- the room's sequence number on LGWAN
    thread_root_id  INTEGER,                      -- the thread's first message, or NULL
    sender          TEXT NOT NULL,                -- 'g:<id>' or 's:<id>'
    sender_name     TEXT NOT NULL,                -- name at posting time
    sender_affiliation TEXT NOT NULL,             -- 所属 at posting time
    body            TEXT NOT NULL,                -- plain text ('' once deleted)
    attachments     INTEGER NOT NULL DEFAULT 0,   -- files that stay on LGWAN
    origin_id       TEXT,                         -- the relay post it came from, if any
    created_at      TEXT NOT NULL,                -- posting time on LGWAN
    edited_at       TEXT,                         -- last edit
    deleted         INTEGER NOT NULL DEFAULT 0    -- 1 = tombstone
);
CREATE INDEX messages_room_seq ON messages(room_id, seq);
CREATE INDEX messages_created ON messages(created_at);

-- Posts made here and not yet confirmed by LGWAN (or refused by it).
CREATE TABLE pending (
    origin_id       TEXT PRIMARY KEY,             -- the post's id, LGWAN's idempotency key
    room_id         INTEGER NOT NULL,             -- the room
    author          TEXT NOT NULL,                -- 'g:<id>' or 's:<id>'
    body            TEXT NOT NULL,                -- plain text
    thread_root_id  INTEGER,                      -- reply target
    posted_at       TEXT NOT NULL,                -- when
    status          TEXT NOT NULL DEFAULT 'queued', -- 'queued' or 'refused'
    refused_code    TEXT                          -- why LGWAN refused it
);
CREATE INDEX pending_room ON pending(room_id, author);

-- Guests and staff phones. Who may exist comes from LGWAN; the credentials exist only here.
CREATE TABLE accounts (
    member          TEXT PRIMARY KEY,             -- 'g:<id>' or 's:<id>'
    kind            TEXT NOT NULL,                -- 'guest' or 'staff'
    display_name    TEXT NOT NULL,                -- name as shown
    affiliation     TEXT NOT NULL,                -- 所属
    status          TEXT NOT NULL,                -- from LGWAN: 'invited', 'enrolled', 'active', 'suspended'
    login           TEXT UNIQUE,                  -- chosen at enrolment
    password_hash   TEXT,                         -- argon2id; NULL until enrolled
    totp_secret     TEXT,                         -- base32 TOTP secret once confirmed
    totp_pending    TEXT,                         -- secret offered during enrolment
    totp_last_step  INTEGER NOT NULL DEFAULT 0,   -- last accepted time step (replay protection)
    enrol_token_sha256 TEXT,                      -- SHA-256 of the open enrolment link token (from LGWAN)
    enrol_expires_at TEXT,                        -- the link stops working after this
    expires_at      TEXT,                         -- the account ends after this (guests)
    device_approval INTEGER NOT NULL DEFAULT 0,   -- 1 = logins from unregistered devices wait for an admin
    privacy_notice_sha256 TEXT,                   -- the 利用目的 notice the guest acknowledged
    privacy_ack_at  TEXT,                         -- when
    failed_logins   INTEGER NOT NULL DEFAULT 0,   -- consecutive failures
    locked_until    TEXT,                         -- lockout end
    updated_at      TEXT NOT NULL                 -- last change
);
CREATE UNIQUE INDEX accounts_enrol_token ON accounts(enrol_token_sha256);

-- Devices an account logged in from (identified by a long-lived HttpOnly cookie; only its hash is kept).
CREATE TABLE devices (
    device_id       TEXT PRIMARY KEY,             -- 32 hex, what LGWAN admins see
    member          TEXT NOT NULL,                -- whose
    cookie_sha256   TEXT NOT NULL,                -- SHA-256 of the device cookie
    label           TEXT NOT NULL DEFAULT '',     -- e.g. "iPhone Safari"
    status          TEXT NOT NULL,                -- 'pending', 'approved', 'revoked'
    created_at      TEXT NOT NULL,                -- first login from it
    decided_at      TEXT,                         -- when LGWAN's decision arrived
    UNIQUE (member, cookie_sha256)
);

CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY,          -- internal id
    token_sha256    TEXT NOT NULL UNIQUE,         -- SHA-256 of the cookie token
    member          TEXT NOT NULL,                -- the account
    device_id       TEXT,                         -- the device, when device approval applies
    csrf_token      TEXT NOT NULL,                -- sent back in X-CSRF-Token
    created_at      TEXT NOT NULL,                -- login time
    last_seen_at    TEXT NOT NULL,                -- last request
    source_ip       TEXT NOT NULL,                -- address at login
    user_agent      TEXT NOT NULL DEFAULT ''      -- browser at login
);
CREATE INDEX sessions_member ON sessions(member);

-- The relay's own audit log: hash-chained like LGWAN's audit_log; pruned after retention.audit.
CREATE TABLE audit (
    id              INTEGER PRIMARY KEY,          -- sequence in the chain
    at              TEXT NOT NULL,                -- UTC time
    actor           TEXT NOT NULL DEFAULT '',     -- 'g:<id>', 's:<id>', 'lgwan' (the link) or '' (anonymous)
    source_ip       TEXT NOT NULL DEFAULT '',     -- client address
    action          TEXT NOT NULL,                -- e.g. 'auth.login', 'queue.envelope_rejected'
    target          TEXT NOT NULL DEFAULT '',     -- what it concerns
    outcome         TEXT NOT NULL DEFAULT 'ok',   -- 'ok', 'denied', 'failed'
    detail          TEXT NOT NULL DEFAULT '{}',   -- JSON (never message text, passwords or numbers)
    prev_hash       TEXT NOT NULL,                -- hash of the previous entry
    hash            TEXT NOT NULL                 -- SHA-256(prev_hash || canonical JSON of this entry)
);
CREATE INDEX audit_action ON audit(action, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;
