-- Tally schema, PostgreSQL flavour. Keep in lockstep with ../sqlite/0001_schema.sql:
-- same tables, columns, keys and indexes; only the types are spelled for PostgreSQL.
-- Ids are the 64-bit Snowflake ids of crate cdr; times are Unix milliseconds (UTC).

-- Directory ------------------------------------------------------------------

CREATE TABLE tenants (
    id          BIGINT PRIMARY KEY,
    name        TEXT    NOT NULL,
    -- lowercase: SIP host names compare case-insensitively
    sip_domain  TEXT    NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id                 BIGINT PRIMARY KEY,
    tenant_id          BIGINT NOT NULL REFERENCES tenants (id),
    extension          TEXT    NOT NULL,
    display_name       TEXT    NOT NULL DEFAULT '',
    -- plaintext: digest authentication needs the password (or a per-realm HA1
    -- per algorithm, which is password-equivalent anyway); see DESIGN.md Storage
    sip_password       TEXT    NOT NULL,
    ring_timeout_secs  BIGINT NOT NULL DEFAULT 30 CHECK (ring_timeout_secs > 0),
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    created_at         BIGINT NOT NULL,
    UNIQUE (tenant_id, extension)
);

-- Location service: the registrar's bindings survive a restart.
CREATE TABLE registrations (
    tenant_id    BIGINT NOT NULL,
    extension    TEXT    NOT NULL,
    -- what identifies the binding, chosen by the registrar: the RFC 5626
    -- instance (+ reg-id) when present, else the normalised Contact URI
    binding_key  TEXT    NOT NULL,
    contact_uri  TEXT    NOT NULL,
    instance_id  TEXT,
    reg_id       BIGINT,
    -- where the REGISTER came from (ip:port) and over which transport
    received     TEXT    NOT NULL,
    transport    TEXT    NOT NULL,
    call_id      TEXT    NOT NULL,
    cseq         BIGINT NOT NULL,
    user_agent   TEXT    NOT NULL DEFAULT '',
    expires_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, extension, binding_key),
    FOREIGN KEY (tenant_id, extension) REFERENCES users (tenant_id, extension) ON DELETE CASCADE
);
CREATE INDEX registrations_expires_at ON registrations (expires_at);

-- Open sessions: enough to close a call after a crash (SPEC §3) ----------------

CREATE TABLE sessions (
    session_id        BIGINT PRIMARY KEY,
    tenant_id         BIGINT NOT NULL REFERENCES tenants (id),
    started_at        BIGINT NOT NULL,
    last_activity_at  BIGINT NOT NULL
);

-- The session's CallEvents in order (JSON, crate cdr's serde), replayed into a
-- cdr::Builder on recovery.
CREATE TABLE session_events (
    session_id  BIGINT NOT NULL REFERENCES sessions (session_id),
    ordinal     BIGINT NOT NULL,
    event       TEXT    NOT NULL,
    PRIMARY KEY (session_id, ordinal)
);

-- CDRs -----------------------------------------------------------------------

-- One row per call; every CdrRecord field has a column, so a record reads back
-- exactly. Enums use their event spellings (direction in the classic vocabulary).
CREATE TABLE cdrs (
    cdr_id               BIGINT PRIMARY KEY,
    session_id           BIGINT NOT NULL UNIQUE,
    tenant_id            BIGINT NOT NULL REFERENCES tenants (id),
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
    started_at           BIGINT NOT NULL,
    rang_at              BIGINT,
    answered_at          BIGINT,
    ended_at             BIGINT NOT NULL,
    call_status          TEXT    NOT NULL,
    status_code          BIGINT NOT NULL,
    ended_reason         TEXT    NOT NULL,
    user_data            TEXT    NOT NULL,
    recording_id         BIGINT,
    recording_url        TEXT,
    recording_duration   BIGINT,
    recovered            BOOLEAN NOT NULL
);
CREATE INDEX cdrs_tenant_started ON cdrs (tenant_id, started_at DESC, cdr_id DESC);
CREATE INDEX cdrs_tenant_caller ON cdrs (tenant_id, caller);
CREATE INDEX cdrs_tenant_callee ON cdrs (tenant_id, callee);

CREATE TABLE cdr_targets (
    cdr_id              BIGINT NOT NULL REFERENCES cdrs (cdr_id) ON DELETE CASCADE,
    -- position in call_targets (the order the PBX started them)
    ordinal             BIGINT NOT NULL,
    target_id           BIGINT NOT NULL,
    call_type           TEXT    NOT NULL,
    caller              TEXT    NOT NULL,
    callee              TEXT    NOT NULL,
    destination         TEXT    NOT NULL,
    started_at          BIGINT NOT NULL,
    rang_at             BIGINT,
    answered_at         BIGINT,
    ended_at            BIGINT NOT NULL,
    status_code         BIGINT NOT NULL,
    end_reason          TEXT    NOT NULL,
    trunk_name          TEXT    NOT NULL,
    outbound_caller_id  TEXT    NOT NULL,
    did                 TEXT    NOT NULL,
    reroute_reason      TEXT,
    cost                DOUBLE PRECISION,
    quality_codec       TEXT,
    quality_packets     BIGINT,
    quality_lost        BIGINT,
    quality_jitter_ms   DOUBLE PRECISION,
    quality_mos         DOUBLE PRECISION,
    PRIMARY KEY (cdr_id, ordinal)
);

-- Transactional outbox (SPEC §4, §5) -------------------------------------------

-- The exact event JSON delivered to webhooks and WebSockets, committed in the
-- same transaction as the state it reports. TEXT, not a JSON type: the bytes
-- (and PortSIP's key order) must come back as written.
CREATE TABLE outbox (
    tenant_id        BIGINT NOT NULL REFERENCES tenants (id),
    -- per tenant, gap-free, strictly increasing: the resume offset
    sequence         BIGINT NOT NULL,
    -- across tenants, gap-free, in commit order: the relay's cursor
    global_sequence  BIGINT NOT NULL UNIQUE,
    event_id         TEXT    NOT NULL UNIQUE,
    event_type       TEXT    NOT NULL,
    session_id       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    payload          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, sequence)
);

CREATE TABLE tenant_sequences (
    tenant_id      BIGINT PRIMARY KEY REFERENCES tenants (id),
    last_sequence  BIGINT NOT NULL
);

-- One row. Locked by every outbox transaction, which is what makes commit
-- order equal sequence order when several nodes share a database.
CREATE TABLE global_sequence (
    id             BIGINT PRIMARY KEY CHECK (id = 1),
    last_sequence  BIGINT NOT NULL
);
INSERT INTO global_sequence (id, last_sequence) VALUES (1, 0);
