-- 0003: find a confirmed guest or phone post by its origin id without scanning every message
-- (each post checks it, so a retry after LGWAN's confirmation is answered, not queued twice).
CREATE INDEX messages_origin ON messages(origin_id) WHERE origin_id IS NOT NULL; -- relay posts only
