-- 0006: one event for many recipients (一斉送信, 安否確認, お知らせ to thousands of staff, issue 6). The event
-- row (room_id and staff_id both NULL) is written once and its recipients are listed here: the frame is
-- built once for every socket, and a 10,000-person broadcast writes 10,000 pairs of integers instead of
-- 10,000 copies of its payload. A row here makes the event visible to that person when they resume.
CREATE TABLE event_recipients (
    staff_id        INTEGER NOT NULL REFERENCES staff(id),             -- who may see the event
    event_id        INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE, -- pruned with its event
    PRIMARY KEY (staff_id, event_id)
) WITHOUT ROWID;
CREATE INDEX event_recipients_event ON event_recipients(event_id);
