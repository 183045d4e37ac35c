-- 0005: files from guests and staff phones (issue 3, item 9). Only files the sanitizer rebuilt and signed
-- arrive (file.sanitized + file.chunk envelopes); they are staged here, checked (signature, SHA-256,
-- type and structure in a confined worker), and only then stored as a blob and posted with origin
-- 'sanitized'. The row stays afterwards: it holds the report staff open, and its job_id makes each
-- sanitizer verdict usable once.

CREATE TABLE sanitized_files (
    job_id          TEXT PRIMARY KEY,             -- the sanitizer's id for this verdict (32 hex); a verdict is used once
    origin_id       TEXT NOT NULL,                -- the upload's id on the relay ('g:<id>:<client id>')
    room_id         INTEGER NOT NULL REFERENCES rooms(id), -- where it was posted
    author_id       INTEGER NOT NULL REFERENCES staff(id), -- the guest's or phone owner's staff row
    thread_root_id  INTEGER,                      -- reply target, as the relay sent it
    output_name     TEXT NOT NULL,                -- display name of the rebuilt file
    output_type     TEXT NOT NULL,                -- rebuilt type as signed ('pdf', 'xlsx', 'png'…)
    output_sha256   TEXT NOT NULL,                -- SHA-256 of the rebuilt bytes as signed (the blob's name once stored)
    output_bytes    INTEGER NOT NULL,             -- their size as signed
    input_sha256    TEXT NOT NULL,                -- SHA-256 of the upload as received by the sanitizer (it never crossed)
    input_bytes     INTEGER NOT NULL,             -- its size
    report          TEXT NOT NULL,                -- the sanitizer's report (JSON; its digest is covered by the signature)
    verdict         TEXT NOT NULL,                -- the signed verdict (JSON: content, key id, signature)
    sanitizer_key_id TEXT NOT NULL,               -- which trusted sanitizer key signed it
    sanitizer_fingerprint TEXT NOT NULL,          -- that key's fingerprint, as the admin installed it
    chunks          INTEGER NOT NULL,             -- file.chunk envelopes announced
    received        INTEGER NOT NULL DEFAULT 0,   -- file.chunk envelopes staged so far (they arrive in order)
    state           TEXT NOT NULL,                -- 'receiving', 'received' (waiting for the re-check), 'posted', 'refused'
    code            TEXT,                         -- why it was refused
    attachment_id   INTEGER REFERENCES attachments(id), -- the attachment staff see, once posted
    created_at      TEXT NOT NULL,                -- when file.sanitized was applied
    checked_at      TEXT                          -- when the re-check finished (posted or refused)
);
CREATE INDEX sanitized_files_state ON sanitized_files(state);
CREATE UNIQUE INDEX sanitized_files_attachment ON sanitized_files(attachment_id);

-- Rebuilt bytes in transit: staged in the same transaction as the envelope's inbox record, so each chunk
-- is taken exactly once whatever crashes; deleted when the file is posted or refused.
CREATE TABLE sanitized_file_chunks (
    job_id          TEXT NOT NULL REFERENCES sanitized_files(job_id), -- the file
    idx             INTEGER NOT NULL,             -- 0, 1, 2… in order
    data            BLOB NOT NULL,                -- at most shared.verdict.CHUNK_BYTES bytes
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
