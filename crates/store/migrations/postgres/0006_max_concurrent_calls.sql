-- Forwarding on busy (issue 9), postgres flavour. Keep in lockstep with ../sqlite/0006_max_concurrent_calls.sql.

-- How many calls a user may be in at once; at the limit a new call to it is
-- busy (its busy forwarding rule applies). NULL: no limit.
ALTER TABLE users ADD COLUMN max_concurrent_calls BIGINT CHECK (max_concurrent_calls > 0);
