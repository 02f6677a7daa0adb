-- Ring groups (issue 9), sqlite flavour. Keep in lockstep with
-- ../postgres/0013_ring_groups.sql. Times are Unix milliseconds (UTC).

-- A number of the tenant's extension space that rings some of its users.
-- The number is unique among the tenant's groups here, and checked
-- against its users' extensions in the writing transaction (the store's
-- ring_groups.rs; user writes check the other way).
CREATE TABLE ring_groups (
    id                   INTEGER PRIMARY KEY,
    tenant_id            INTEGER NOT NULL REFERENCES tenants (id),
    number               TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    -- ring_all | hunt | round_robin
    strategy             TEXT    NOT NULL CHECK (strategy IN ('ring_all', 'hunt', 'round_robin')),
    -- JSON array of extensions, in ringing order
    members              TEXT    NOT NULL DEFAULT '[]',
    -- hunt / round_robin: seconds each member rings
    member_timeout_secs  INTEGER NOT NULL CHECK (member_timeout_secs > 0),
    -- seconds the whole group rings
    timeout_secs         INTEGER NOT NULL CHECK (timeout_secs > 0),
    -- an extension or a group number of the tenant; NULL: hang up (480)
    no_answer            TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (tenant_id, number)
);
