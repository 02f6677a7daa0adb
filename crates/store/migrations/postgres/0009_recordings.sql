-- Call recordings (SPEC §7), PostgreSQL flavour. Keep in lockstep with
-- ../sqlite/0009_recordings.sql. Times are Unix milliseconds (UTC).

-- One WAV file per recorded call, linked to its CDR by session_id. caller
-- and callee are copied from the call so a StandardUser's "own calls" and
-- the number filter need no join.
CREATE TABLE recordings (
    id           BIGINT PRIMARY KEY,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants (id),
    session_id   BIGINT  NOT NULL UNIQUE,
    caller       TEXT    NOT NULL,
    callee       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    duration_ms  BIGINT  NOT NULL,
    size_bytes   BIGINT  NOT NULL,
    -- relative to the recordings directory
    path         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL
);

-- Time ranges and deep pages per tenant, newest first; retention scans
-- created_at.
CREATE INDEX recordings_tenant_started ON recordings (tenant_id, started_at DESC, id DESC);
CREATE INDEX recordings_created ON recordings (created_at);
