-- 0004: municipal operations — 安否確認, 一斉送信, 確認必須, お知らせ/掲示板, tasks, polls.

-- 安否確認 (safety confirmation): who was asked is fixed when it starts (the target snapshot).
CREATE TABLE safety_checks (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- organisation
    title           TEXT NOT NULL,                -- e.g. 【訓練】震度6弱 安否確認
    message         TEXT NOT NULL DEFAULT '',     -- instructions shown to staff
    questions       TEXT NOT NULL,                -- JSON list of question codes asked: condition, attend, eta, location, note
    target          TEXT NOT NULL,                -- JSON {"all": true} | {"departments": [...]} | {"staff": [...]} | {"relay_phones": true}
    started_by      INTEGER REFERENCES staff(id), -- who started it (a relay-started check: the phone user LGWAN verified)
    started_at      TEXT NOT NULL,                -- when
    closed_at       TEXT,                         -- NULL while open
    origin          TEXT NOT NULL DEFAULT 'lgwan',-- 'lgwan' or 'relay' (started on the relay while LGWAN was down)
    origin_id       TEXT UNIQUE                   -- relay's id for a relay-started check (idempotent hand-over)
);

CREATE TABLE safety_targets (
    check_id        INTEGER NOT NULL REFERENCES safety_checks(id),  -- the check
    staff_id        INTEGER NOT NULL REFERENCES staff(id),          -- a person asked
    department_id   INTEGER REFERENCES departments(id),             -- their 所属 when it started (roll-up key)
    reminded_at     TEXT,                         -- last reminder sent
    PRIMARY KEY (check_id, staff_id)
) WITHOUT ROWID;
CREATE INDEX safety_targets_dept ON safety_targets(check_id, department_id);

CREATE TABLE safety_answers (
    check_id        INTEGER NOT NULL REFERENCES safety_checks(id),  -- the check
    staff_id        INTEGER NOT NULL REFERENCES staff(id),          -- who answered (latest answer wins)
    condition       TEXT NOT NULL,                -- 'safe' 無事, 'minor' 軽傷, 'serious' 重傷, 'need_help' 要支援
    attend          TEXT NOT NULL DEFAULT 'unknown', -- 参集可否: 'yes', 'no', 'unknown'
    eta_minutes     INTEGER,                      -- 到着見込み (minutes), if attending
    location        TEXT NOT NULL DEFAULT '',     -- 現在地 (free text; no GPS collected)
    note            TEXT NOT NULL DEFAULT '',     -- free text
    via             TEXT NOT NULL DEFAULT 'web',  -- 'web' or 'relay'
    answered_at     TEXT NOT NULL,                -- when the latest answer was given
    origin_id       TEXT UNIQUE,                  -- relay answer id (idempotent when delivered after an outage)
    PRIMARY KEY (check_id, staff_id)
) WITHOUT ROWID;

-- 一斉送信 (broadcast) with per-recipient delivery, read and acknowledgement tracking.
CREATE TABLE broadcasts (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- sender's organisation
    sender_id       INTEGER NOT NULL REFERENCES staff(id),          -- sender
    sender_affiliation TEXT NOT NULL,             -- 所属 at sending
    title           TEXT NOT NULL,                -- subject
    body            TEXT NOT NULL,                -- plain text
    important       INTEGER NOT NULL DEFAULT 0,   -- 重要
    ack_required    INTEGER NOT NULL DEFAULT 0,   -- 確認必須: recipients press 確認
    target          TEXT NOT NULL,                -- JSON target description
    created_at      TEXT NOT NULL                 -- when
);
CREATE TABLE broadcast_recipients (
    broadcast_id    INTEGER NOT NULL REFERENCES broadcasts(id),     -- the broadcast
    staff_id        INTEGER NOT NULL REFERENCES staff(id),          -- a recipient
    org_id          INTEGER NOT NULL,             -- recipient's organisation (roll-up)
    department_id   INTEGER,                      -- recipient's 所属 at sending (roll-up)
    delivered_at    TEXT,                         -- first pushed to an open session (WebSocket)
    read_at         TEXT,                         -- opened
    acked_at        TEXT,                         -- pressed 確認
    reminded_at     TEXT,                         -- last re-notification
    PRIMARY KEY (broadcast_id, staff_id)
) WITHOUT ROWID;
CREATE INDEX broadcast_recipients_staff ON broadcast_recipients(staff_id, broadcast_id);

-- Organisations that let another organisation broadcast to their staff (a prefecture to its municipalities).
CREATE TABLE broadcast_grants (
    target_org_id   INTEGER NOT NULL REFERENCES organisations(id),  -- whose staff receive
    source_org_id   INTEGER NOT NULL REFERENCES organisations(id),  -- who may send
    granted_by      INTEGER NOT NULL REFERENCES staff(id),          -- target organisation's admin
    granted_at      TEXT NOT NULL,                -- when
    PRIMARY KEY (target_org_id, source_org_id)
) WITHOUT ROWID;

-- 確認必須 on an ordinary room message.
CREATE TABLE ack_requests (
    message_id      INTEGER PRIMARY KEY REFERENCES messages(id),  -- the message needing 確認
    requested_by    INTEGER NOT NULL REFERENCES staff(id),        -- its sender
    requested_at    TEXT NOT NULL                                  -- when
);
CREATE TABLE message_acks (
    message_id      INTEGER NOT NULL REFERENCES messages(id),     -- the message
    staff_id        INTEGER NOT NULL REFERENCES staff(id),        -- who pressed 確認
    acked_at        TEXT NOT NULL,                                 -- when
    PRIMARY KEY (message_id, staff_id)
) WITHOUT ROWID;

-- お知らせ / 掲示板.
CREATE TABLE notices (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- organisation
    author_id       INTEGER NOT NULL REFERENCES staff(id),          -- author
    author_affiliation TEXT NOT NULL,             -- 所属 at posting
    title           TEXT NOT NULL,                -- 件名
    body            TEXT NOT NULL,                -- plain text
    target          TEXT NOT NULL,                -- JSON: {"all": true} or {"departments": [...]}
    read_confirmation INTEGER NOT NULL DEFAULT 1, -- track who has read it
    expires_at      TEXT,                         -- hidden after this (kept for records)
    created_at      TEXT NOT NULL                 -- when
);
CREATE TABLE notice_reads (
    notice_id       INTEGER NOT NULL REFERENCES notices(id),      -- the notice
    staff_id        INTEGER NOT NULL REFERENCES staff(id),        -- reader
    read_at         TEXT NOT NULL,                                 -- when
    PRIMARY KEY (notice_id, staff_id)
) WITHOUT ROWID;
CREATE TABLE notice_attachments (
    id              INTEGER PRIMARY KEY,          -- internal id
    notice_id       INTEGER NOT NULL REFERENCES notices(id),      -- the notice
    filename        TEXT NOT NULL,                -- cleaned display name
    sha256          TEXT NOT NULL REFERENCES blobs(sha256),        -- content (LGWAN only; never crosses)
    created_at      TEXT NOT NULL                 -- when
);

-- Tasks from messages (誰が・何を・いつまでに).
CREATE TABLE tasks (
    id              INTEGER PRIMARY KEY,          -- internal id
    org_id          INTEGER NOT NULL REFERENCES organisations(id),  -- organisation
    room_id         INTEGER REFERENCES rooms(id), -- room it came from (visibility follows the room)
    message_id      INTEGER REFERENCES messages(id), -- message it came from
    title           TEXT NOT NULL,                -- 何を
    due_date        TEXT,                         -- いつまでに (JST date)
    status          TEXT NOT NULL DEFAULT 'open', -- 'open', 'doing', 'done'
    created_by      INTEGER NOT NULL REFERENCES staff(id),  -- who created it
    created_at      TEXT NOT NULL,                -- when
    updated_at      TEXT NOT NULL,                -- last change
    reminded_on     TEXT                          -- JST date of the last due reminder
);
CREATE TABLE task_assignees (
    task_id         INTEGER NOT NULL REFERENCES tasks(id),        -- the task
    staff_id        INTEGER NOT NULL REFERENCES staff(id),        -- 誰が
    PRIMARY KEY (task_id, staff_id)
) WITHOUT ROWID;
CREATE INDEX task_assignees_staff ON task_assignees(staff_id, task_id);

-- Polls and surveys in rooms (庁内アンケート).
CREATE TABLE polls (
    id              INTEGER PRIMARY KEY,          -- internal id
    room_id         INTEGER NOT NULL REFERENCES rooms(id),        -- where it was asked
    created_by      INTEGER NOT NULL REFERENCES staff(id),        -- who asked
    question        TEXT NOT NULL,                -- the question
    options         TEXT NOT NULL,                -- JSON list of option labels
    multiple        INTEGER NOT NULL DEFAULT 0,   -- several choices allowed
    anonymous       INTEGER NOT NULL DEFAULT 0,   -- results show counts only, never names
    closes_at       TEXT,                         -- no votes after this
    created_at      TEXT NOT NULL                 -- when
);
CREATE TABLE poll_votes (
    poll_id         INTEGER NOT NULL REFERENCES polls(id),        -- the poll
    staff_id        INTEGER NOT NULL REFERENCES staff(id),        -- voter
    option_index    INTEGER NOT NULL,             -- chosen option
    department_id   INTEGER,                      -- voter's 所属 when voting (results by department)
    voted_at        TEXT NOT NULL,                -- when
    PRIMARY KEY (poll_id, staff_id, option_index)
) WITHOUT ROWID;
