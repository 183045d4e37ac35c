-- 0002: the relay link (issue 5) — durable outbox and inbox of signed envelopes, link state,
-- rooms mirrored to the relay, guests, staff-phone grants and registered devices.
-- (0002 is reserved for another change.)

-- One row: the state of the link to the internet relay.
CREATE TABLE bridge_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1), -- always 1
    relay_epoch     TEXT,                         -- relay instance id at the last handshake; a new one means a rebuilt relay (full resync)
    out_last_seq    INTEGER NOT NULL DEFAULT 0,   -- seq given to the newest LGWAN→relay envelope
    out_acked_seq   INTEGER NOT NULL DEFAULT 0,   -- highest LGWAN→relay seq the relay confirmed applied
    in_applied_seq  INTEGER NOT NULL DEFAULT 0,   -- highest relay→LGWAN seq applied here (same transaction as the apply)
    paused          INTEGER NOT NULL DEFAULT 0,   -- 1 = an admin cut the link (緊急遮断); the dialler stays down until resumed
    resync_pending  INTEGER NOT NULL DEFAULT 0,   -- 1 = an admin asked to rebuild the relay's copy at the next handshake
    updated_at      TEXT NOT NULL                 -- last change of this row
);
INSERT INTO bridge_state(id, updated_at) VALUES (1, '1970-01-01T00:00:00.000Z');

-- LGWAN→relay envelopes, written in the same transaction as the state change they describe.
-- The payload is sealed (signed, timestamped) each time it is sent, so a long outage cannot make it stale.
CREATE TABLE bridge_outbox (
    seq             INTEGER PRIMARY KEY,          -- per-direction sequence number, in commit order
    envelope_id     TEXT NOT NULL UNIQUE,         -- 32 hex; the same on every retransmission
    kind            TEXT NOT NULL,                -- envelope kind (shared/envelope.py allow-list)
    payload         TEXT NOT NULL,                -- canonical JSON of the payload (may hold message text of crossing rooms)
    room_id         INTEGER,                      -- the room concerned, for diagnostics; NULL for account/device kinds
    created_at      TEXT NOT NULL,                -- when the state change committed (queue age, lag)
    acked_at        TEXT                          -- when the relay confirmed it; acked rows are pruned after [bridge] keep_acked
);
CREATE INDEX bridge_outbox_acked ON bridge_outbox(acked_at);
-- The newest seq follows the outbox in the same statement (one round trip per queued envelope).
CREATE TRIGGER bridge_outbox_last_seq AFTER INSERT ON bridge_outbox BEGIN
    UPDATE bridge_state SET out_last_seq = NEW.seq, updated_at = NEW.created_at WHERE id = 1;
END;

-- relay→LGWAN envelopes already taken (applied or refused): the replay/rewind check and an operations record.
CREATE TABLE bridge_inbox (
    seq             INTEGER PRIMARY KEY,          -- the relay's sequence number
    envelope_id     TEXT NOT NULL,                -- its id (a resend has the same id; a rewind a different one)
    kind            TEXT NOT NULL,                -- envelope kind
    outcome         TEXT NOT NULL,                -- 'applied', 'refused:<code>' (business rule), 'rejected:<code>' (schema)
    received_at     TEXT NOT NULL                 -- when it was applied; pruned after [bridge] keep_acked
);
-- Recording an envelope advances the applied seq, in the apply's transaction.
CREATE TRIGGER bridge_inbox_applied AFTER INSERT ON bridge_inbox BEGIN
    UPDATE bridge_state SET in_applied_seq = NEW.seq, updated_at = NEW.received_at WHERE id = 1;
END;

-- Rooms whose copy the relay holds (policy staff_mobile or guests), so a policy change is noticed.
CREATE TABLE bridge_rooms (
    room_id         INTEGER PRIMARY KEY REFERENCES rooms(id), -- the mirrored room
    policy          TEXT NOT NULL,                -- crossing policy when last sent
    since           TEXT NOT NULL                 -- when the relay got its snapshot
);

-- External guests. Each has a row in staff (role 'guest', no password: can never log in to LGWAN,
-- never listed in the staff directory) so that they can author messages, be members and have read cursors.
CREATE TABLE guests (
    staff_id        INTEGER PRIMARY KEY REFERENCES staff(id), -- the guest's identity row
    affiliation     TEXT NOT NULL,                -- the guest's organisation (e.g. 〇〇病院), shown as 所属
    invited_by      INTEGER NOT NULL REFERENCES staff(id), -- room owner who invited
    invited_room_id INTEGER REFERENCES rooms(id), -- room of the first invitation
    status          TEXT NOT NULL,                -- 'invited', 'enrolled' (awaiting approval), 'active', 'removed', 'expired'
    invite_token_sha256 TEXT,                     -- SHA-256 of the open enrolment link token (the token itself is never stored)
    invite_expires_at TEXT,                       -- the enrolment link stops working after this
    expires_at      TEXT NOT NULL,                -- the guest account ends after this
    privacy_notice_sha256 TEXT,                   -- the 利用目的 notice the guest acknowledged on the relay
    privacy_ack_at  TEXT,                         -- when
    enrolled_at     TEXT,                         -- when the guest set password and TOTP on the relay
    approved_by     INTEGER REFERENCES staff(id), -- who approved (届け出制)
    approved_at     TEXT,                         -- when
    ended_at        TEXT,                         -- removal or expiry
    created_at      TEXT NOT NULL                 -- invitation time
);
CREATE INDEX guests_status ON guests(status, expires_at);

-- Staff members allowed to use the relay from a phone (届け出制).
CREATE TABLE mobile_grants (
    staff_id        INTEGER PRIMARY KEY REFERENCES staff(id), -- the staff member
    status          TEXT NOT NULL,                -- 'granted' (may enrol), 'active', 'revoked'
    enrol_token_sha256 TEXT,                      -- SHA-256 of the open enrolment link token
    enrol_expires_at TEXT,                        -- the enrolment link stops working after this
    granted_by      INTEGER NOT NULL REFERENCES staff(id), -- admin
    granted_at      TEXT NOT NULL,                -- when
    enrolled_at     TEXT,                         -- when password/TOTP were set on the relay
    revoked_at      TEXT                          -- when mobile use ended
);

-- Devices that logged in on the relay (phones; guests when device approval is on).
CREATE TABLE relay_devices (
    device_id       TEXT PRIMARY KEY,             -- 32 hex, chosen by the relay (not the device cookie)
    staff_id        INTEGER NOT NULL REFERENCES staff(id), -- whose device
    label           TEXT NOT NULL DEFAULT '',     -- e.g. "iPhone Safari", from the User-Agent
    status          TEXT NOT NULL,                -- 'pending', 'approved', 'revoked'
    requested_at    TEXT NOT NULL,                -- first login attempt from it
    decided_by      INTEGER REFERENCES staff(id), -- admin who approved or revoked
    decided_at      TEXT                          -- when
);
CREATE INDEX relay_devices_status ON relay_devices(status, requested_at);
