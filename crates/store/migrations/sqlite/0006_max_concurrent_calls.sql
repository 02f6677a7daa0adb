-- Forwarding on busy (issue 9), sqlite flavour. Keep in lockstep with ../postgres/0006_max_concurrent_calls.sql.

-- How many calls a user may be in at once; at the limit a new call to it is
-- busy (its busy forwarding rule applies). NULL: no limit.
ALTER TABLE users ADD COLUMN max_concurrent_calls INTEGER CHECK (max_concurrent_calls > 0);
