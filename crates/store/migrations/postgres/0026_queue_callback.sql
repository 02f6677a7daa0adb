-- Queue callback (issue 14): a waiting caller may press 1 to be called
-- back when an agent is free; this many callback calls are tried at most
-- (0 = no callback offered). Kept in lockstep with the other backend's
-- 0026_queue_callback.sql.
ALTER TABLE queues ADD COLUMN callback_attempts BIGINT NOT NULL DEFAULT 0 CHECK (callback_attempts >= 0);
