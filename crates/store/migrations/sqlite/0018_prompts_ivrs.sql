-- Prompts and IVRs (issue 14), sqlite flavour. Keep in lockstep with
-- ../postgres/0018_prompts_ivrs.sql. Times are Unix milliseconds (UTC).

-- A tenant's uploaded audio: the file is <data_dir>/prompts/<tenant_id>/<id>.wav
-- (8 kHz PCM16 mono, as decoded from the upload); this row is its index.
CREATE TABLE prompts (
    id           INTEGER PRIMARY KEY,
    tenant_id    INTEGER NOT NULL REFERENCES tenants (id),
    name         TEXT    NOT NULL,
    duration_ms  INTEGER NOT NULL CHECK (duration_ms > 0),
    size_bytes   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

-- An auto attendant: a number of the tenant's extension space (users,
-- ring groups and IVRs share it; the writing transaction checks the
-- other tables, as ring_groups does).
CREATE TABLE ivrs (
    id                   INTEGER PRIMARY KEY,
    tenant_id            INTEGER NOT NULL REFERENCES tenants (id),
    number               TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    -- NULL: the built-in menu prompt
    greeting_prompt_id   INTEGER REFERENCES prompts (id),
    -- JSON object: key ("0"-"9", "*", "#") -> a number of the tenant or "hangup"
    menu                 TEXT    NOT NULL DEFAULT '{}',
    dial_by_extension    BOOLEAN NOT NULL DEFAULT FALSE,
    digit_timeout_secs   INTEGER NOT NULL CHECK (digit_timeout_secs > 0),
    retries              INTEGER NOT NULL CHECK (retries >= 0),
    -- a number of the tenant, "hangup", or NULL (the menu again)
    timeout_destination  TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (tenant_id, number)
);
