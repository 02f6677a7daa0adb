-- Call queues (issue 14), sqlite flavour. Keep in lockstep with
-- ../postgres/0020_queues.sql. Times are Unix milliseconds (UTC).

-- A number of the tenant's extension space (shared with users, ring
-- groups and IVRs; checked in the writing transaction) whose callers wait
-- for its agents.
CREATE TABLE queues (
    id                  INTEGER PRIMARY KEY,
    tenant_id           INTEGER NOT NULL REFERENCES tenants (id),
    number              TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    strategy            TEXT    NOT NULL CHECK (strategy IN ('ring_all', 'longest_idle', 'round_robin', 'fewest_calls')),
    -- JSON array of extensions, in the queue's order
    agents              TEXT    NOT NULL DEFAULT '[]',
    -- JSON array of the agents logged in now
    logged_in           TEXT    NOT NULL DEFAULT '[]',
    agent_timeout_secs  INTEGER NOT NULL CHECK (agent_timeout_secs > 0),
    wrap_up_secs        INTEGER NOT NULL CHECK (wrap_up_secs >= 0),
    -- NULL: no limit
    max_wait_secs       INTEGER,
    max_length          INTEGER,
    -- a number of the tenant or "hangup"; NULL: hang up (max wait) / busy (max length)
    overflow            TEXT,
    -- NULL: the built-in music on hold
    moh_prompt_id       INTEGER REFERENCES prompts (id),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (tenant_id, number)
);
