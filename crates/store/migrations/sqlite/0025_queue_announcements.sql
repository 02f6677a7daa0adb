-- Queues' position announcements (issue 14): every this many seconds a
-- waiting caller hears "you are caller number N"; 0 = never. Kept in
-- lockstep with the other backend's 0025_queue_announcements.sql.
ALTER TABLE queues ADD COLUMN announce_position_secs INTEGER NOT NULL DEFAULT 0 CHECK (announce_position_secs >= 0);
