-- Tally schema, SQLite flavour. Keep in lockstep with ../postgres/0001_schema.sql:
-- same tables, columns, keys and indexes; only the types are spelled for SQLite.
-- Ids are the 64-bit Snowflake ids of crate cdr; times are Unix milliseconds (UTC).

-- Directory ------------------------------------------------------------------

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    -- lowercase: SIP host names compare case-insensitively
    sip_domain  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id                 INTEGER PRIMARY KEY,
    tenant_id          INTEGER NOT NULL REFERENCES tenants (id),
    extension          TEXT    NOT NULL,
    display_name       TEXT    NOT NULL DEFAULT '',
    -- plaintext: digest authentication needs the password (or a per-realm HA1
    -- per algorithm, which is password-equivalent anyway); see DESIGN.md Storage
    sip_password       TEXT    NOT NULL,
    ring_timeout_secs  INTEGER NOT NULL DEFAULT 30 CHECK (ring_timeout_secs > 0),
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    created_at         INTEGER NOT NULL,
    UNIQUE (tenant_id, extension)
);

-- Location service: the registrar's bindings survive a restart.
CREATE TABLE registrations (
    tenant_id    INTEGER NOT NULL,
    extension    TEXT    NOT NULL,
    -- what identifies the binding, chosen by the registrar: the RFC 5626
    -- instance (+ reg-id) when present, else the normalised Contact URI
    binding_key  TEXT    NOT NULL,
    contact_uri  TEXT    NOT NULL,
    instance_id  TEXT,
    reg_id       INTEGER,
    -- where the REGISTER came from (ip:port) and over which transport
    received     TEXT    NOT NULL,
    transport    TEXT    NOT NULL,
    call_id      TEXT    NOT NULL,
    cseq         INTEGER NOT NULL,
    user_agent   TEXT    NOT NULL DEFAULT '',
    expires_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, extension, binding_key),
    FOREIGN KEY (tenant_id, extension) REFERENCES users (tenant_id, extension) ON DELETE CASCADE
);
CREATE INDEX registrations_expires_at ON registrations (expires_at);

-- Open sessions: enough to close a call after a crash (SPEC §3) ----------------

CREATE TABLE sessions (
    session_id        INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    started_at        INTEGER NOT NULL,
    last_activity_at  INTEGER NOT NULL
);

-- The session's CallEvents in order (JSON, crate cdr's serde), replayed into a
-- cdr::Builder on recovery.
CREATE TABLE session_events (
    session_id  INTEGER NOT NULL REFERENCES sessions (session_id),
    ordinal     INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    PRIMARY KEY (session_id, ordinal)
);

-- CDRs -----------------------------------------------------------------------

-- One row per call; every CdrRecord field has a column, so a record reads back
-- exactly. Enums use their event spellings (direction in the classic vocabulary).
CREATE TABLE cdrs (
    cdr_id               INTEGER PRIMARY KEY,
    session_id           INTEGER NOT NULL UNIQUE,
    tenant_id            INTEGER NOT NULL REFERENCES tenants (id),
    tenant_name          TEXT    NOT NULL,
    call_id              TEXT    NOT NULL,
    direction            TEXT    NOT NULL,
    caller               TEXT    NOT NULL,
    caller_display_name  TEXT    NOT NULL,
    caller_domain        TEXT    NOT NULL,
    callee               TEXT    NOT NULL,
    callee_display_name  TEXT    NOT NULL,
    callee_domain        TEXT    NOT NULL,
    did                  TEXT    NOT NULL,
    trunk_name           TEXT    NOT NULL,
    outbound_caller_id   TEXT    NOT NULL,
    started_at           INTEGER NOT NULL,
    rang_at              INTEGER,
    answered_at          INTEGER,
    ended_at             INTEGER NOT NULL,
    call_status          TEXT    NOT NULL,
    status_code          INTEGER NOT NULL,
    ended_reason         TEXT    NOT NULL,
    user_data            TEXT    NOT NULL,
    recording_id         INTEGER,
    recording_url        TEXT,
    recording_duration   INTEGER,
    recovered            BOOLEAN NOT NULL
);
CREATE INDEX cdrs_tenant_started ON cdrs (tenant_id, started_at DESC, cdr_id DESC);
CREATE INDEX cdrs_tenant_caller ON cdrs (tenant_id, caller);
CREATE INDEX cdrs_tenant_callee ON cdrs (tenant_id, callee);

CREATE TABLE cdr_targets (
    cdr_id              INTEGER NOT NULL REFERENCES cdrs (cdr_id) ON DELETE CASCADE,
    -- position in call_targets (the order the PBX started them)
    ordinal             INTEGER NOT NULL,
    target_id           INTEGER NOT NULL,
    call_type           TEXT    NOT NULL,
    caller              TEXT    NOT NULL,
    callee              TEXT    NOT NULL,
    destination         TEXT    NOT NULL,
    started_at          INTEGER NOT NULL,
    rang_at             INTEGER,
    answered_at         INTEGER,
    ended_at            INTEGER NOT NULL,
    status_code         INTEGER NOT NULL,
    end_reason          TEXT    NOT NULL,
    trunk_name          TEXT    NOT NULL,
    outbound_caller_id  TEXT    NOT NULL,
    did                 TEXT    NOT NULL,
    reroute_reason      TEXT,
    cost                REAL,
    quality_codec       TEXT,
    quality_packets     INTEGER,
    quality_lost        INTEGER,
    quality_jitter_ms   REAL,
    quality_mos         REAL,
    PRIMARY KEY (cdr_id, ordinal)
);

-- Transactional outbox (SPEC §4, §5) -------------------------------------------

-- The exact event JSON delivered to webhooks and WebSockets, committed in the
-- same transaction as the state it reports. TEXT, not a JSON type: the bytes
-- (and PortSIP's key order) must come back as written.
CREATE TABLE outbox (
    tenant_id        INTEGER NOT NULL REFERENCES tenants (id),
    -- per tenant, gap-free, strictly increasing: the resume offset
    sequence         INTEGER NOT NULL,
    -- across tenants, gap-free, in commit order: the relay's cursor
    global_sequence  INTEGER NOT NULL UNIQUE,
    event_id         TEXT    NOT NULL UNIQUE,
    event_type       TEXT    NOT NULL,
    session_id       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    payload          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, sequence)
);

CREATE TABLE tenant_sequences (
    tenant_id      INTEGER PRIMARY KEY REFERENCES tenants (id),
    last_sequence  INTEGER NOT NULL
);

-- One row. Locked by every outbox transaction, which is what makes commit
-- order equal sequence order when several nodes share a database.
CREATE TABLE global_sequence (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    last_sequence  INTEGER NOT NULL
);
INSERT INTO global_sequence (id, last_sequence) VALUES (1, 0);
