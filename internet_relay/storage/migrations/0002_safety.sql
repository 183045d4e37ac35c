-- 0002: 安否確認 (safety confirmation) for staff phones (issue 6). Checks started on LGWAN reach only
-- the phone-registered targets; during an LGWAN outage an authorised phone account starts one here,
-- and the relay hands it over with its answers when the link returns. Answers are text only.

-- From LGWAN (account.upsert): whether this staff phone may start a check here.
ALTER TABLE accounts ADD COLUMN safety_manager INTEGER NOT NULL DEFAULT 0; -- 1 = LGWAN role org_admin or safety_manager

CREATE TABLE safety_checks (
    id              INTEGER PRIMARY KEY,          -- the relay's id (what phones use in URLs)
    origin          TEXT NOT NULL,                -- 'lgwan' (started on LGWAN) or 'relay' (started here)
    lgwan_check_id  INTEGER UNIQUE,               -- LGWAN's id; NULL for a relay check LGWAN has not named
    origin_id       TEXT UNIQUE,                  -- a relay check's id, LGWAN's idempotency key at hand-over
    title           TEXT NOT NULL,                -- shown after the 【安否確認】 label
    message         TEXT NOT NULL DEFAULT '',     -- instructions
    questions       TEXT NOT NULL,                -- JSON list of question codes: condition, attend, eta, location, note
    started_by      TEXT,                         -- 's:<id>' who started a relay check (sees its roll-up)
    started_at      TEXT NOT NULL,                -- when it started (on its own tier)
    closed_at       TEXT,                         -- NULL while answers are taken
    updated_at      TEXT NOT NULL                 -- last change
);

-- Who is asked: phone-registered staff only (LGWAN sends nobody else).
CREATE TABLE safety_targets (
    check_id        INTEGER NOT NULL REFERENCES safety_checks(id) ON DELETE CASCADE, -- the check
    member          TEXT NOT NULL,                -- 's:<id>'
    display_name    TEXT NOT NULL DEFAULT '',     -- name when asked (the starter's list of who needs help)
    affiliation     TEXT NOT NULL DEFAULT '',     -- 所属 when asked: the roll-up key of a relay check
    reminded_at     TEXT,                         -- last reminder pushed to the phone
    PRIMARY KEY (check_id, member)
) WITHOUT ROWID;
CREATE INDEX safety_targets_member ON safety_targets(member);

-- Answers given here (the latest of a person counts); each is queued for LGWAN as safety.answer.
CREATE TABLE safety_answers (
    check_id        INTEGER NOT NULL REFERENCES safety_checks(id) ON DELETE CASCADE, -- the check
    member          TEXT NOT NULL,                -- who answered
    condition       TEXT NOT NULL,                -- 'safe' 無事, 'minor' 軽傷, 'serious' 重傷, 'need_help' 要支援
    attend          TEXT NOT NULL DEFAULT 'unknown', -- 参集可否: 'yes', 'no', 'unknown'
    eta_minutes     INTEGER,                      -- 到着見込み (minutes)
    location        TEXT NOT NULL DEFAULT '',     -- 現在地 (free text; no GPS collected)
    note            TEXT NOT NULL DEFAULT '',     -- 連絡事項
    answered_at     TEXT NOT NULL,                -- when
    origin_id       TEXT NOT NULL UNIQUE,         -- the envelope's origin id: LGWAN applies it once
    PRIMARY KEY (check_id, member)
) WITHOUT ROWID;
CREATE INDEX safety_checks_started ON safety_checks(started_at);
