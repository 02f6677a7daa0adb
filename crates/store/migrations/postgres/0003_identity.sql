-- Identity (issue 5), PostgreSQL flavour. Keep in lockstep with ../sqlite/0003_identity.sql.

-- Tenants: settings --------------------------------------------------------------

-- IANA time zone name (validated by the API): CSV exports and reports show
-- times in it.
ALTER TABLE tenants ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
-- CDRs older than this many days may be purged; NULL keeps them forever.
ALTER TABLE tenants ADD COLUMN retention_days BIGINT CHECK (retention_days > 0);

-- Users: web identity ------------------------------------------------------------

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'StandardUser'
    CHECK (role IN ('Admin', 'QueueManager', 'StandardUser'));
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
-- An optional sign-in name besides the extension number (unique per tenant).
ALTER TABLE users ADD COLUMN username TEXT;
-- The web (REST) password as an argon2id PHC string, separate from the SIP
-- password; NULL: the user cannot sign in to the API.
ALTER TABLE users ADD COLUMN password_hash TEXT;
-- Forwarding rules as JSON (an array), stored for the engine's later use.
ALTER TABLE users ADD COLUMN forwarding TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN recording BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_tenant_username ON users (tenant_id, username);

-- One row, bumped in the transaction of every directory change (tenants,
-- users): nodes sharing the database poll it and reload their engine's
-- directory when it moves.
CREATE TABLE directory_version (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 0);

-- System accounts: the system admin's password hash, shared by the nodes.
CREATE TABLE system_accounts (
    username       TEXT    PRIMARY KEY,
    password_hash  TEXT    NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Bearer tokens, stored as the hex SHA-256 of the token (never the token).
-- A refresh token's rotations share a family; presenting a spent refresh
-- token again revokes the whole family (reuse detection).
CREATE TABLE auth_tokens (
    token_hash  TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('access', 'refresh')),
    family      TEXT    NOT NULL,
    -- NULL tenant: the system admin
    tenant_id   BIGINT REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     BIGINT REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- refresh tokens: when it was exchanged for a new pair
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX auth_tokens_family ON auth_tokens (family);
CREATE INDEX auth_tokens_expires_at ON auth_tokens (expires_at);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

-- Tenant API keys for integrations: shown once, stored hashed.
CREATE TABLE api_keys (
    id            BIGINT PRIMARY KEY,
    tenant_id     BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('Admin', 'QueueManager', 'StandardUser')),
    key_hash      TEXT    NOT NULL UNIQUE,
    -- the key's first characters, to recognise it in a list
    prefix        TEXT    NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    UNIQUE (tenant_id, name)
);

-- Login throttling, shared by the nodes: one row per account or source
-- address with recent failures.
CREATE TABLE login_failures (
    throttle_key  TEXT    PRIMARY KEY,
    failures      BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Audit log: sign-ins, failed sign-ins, configuration changes. No foreign
-- key: entries outlive what they name.
CREATE TABLE audit_logs (
    id          BIGINT PRIMARY KEY,
    -- NULL: a system entry (the system admin's, or a sign-in to no tenant)
    tenant_id   BIGINT,
    at          BIGINT NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_logs_tenant ON audit_logs (tenant_id, id);
