-- Queue callback, the agents' feature codes and prompts shared by nodes
-- (issue 14). Kept in
-- lockstep with the other backend's 0026_queue_callback_agent_codes.sql.

-- A waiting caller may press 1 to be called back when an agent is free;
-- this many callback calls are tried at most (0 = no callback offered).
ALTER TABLE queues ADD COLUMN callback_attempts INTEGER NOT NULL DEFAULT 0 CHECK (callback_attempts >= 0);
-- What an agent dials to log in to (out of) its queues: the code alone
-- (every queue) or followed by a queue's number.
ALTER TABLE tenants ADD COLUMN agent_login_code TEXT NOT NULL DEFAULT '*45';
ALTER TABLE tenants ADD COLUMN agent_logout_code TEXT NOT NULL DEFAULT '*46';
-- A prompt's audio (the 8 kHz PCM16 WAV the upload was decoded to), so
-- that every node sharing the database can load it; NULL for prompts
-- uploaded before, which only the node holding their file plays.
ALTER TABLE prompts ADD COLUMN audio BLOB;
