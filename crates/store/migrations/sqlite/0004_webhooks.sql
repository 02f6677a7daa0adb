-- Webhook delivery (SPEC §5), SQLite flavour. Keep in lockstep with
-- ../postgres/0004_webhooks.sql. Times are Unix milliseconds (UTC).

-- One `cdr_event` endpoint per tenant: the tenant admin's configuration and
-- the dispatcher's view of its health.
CREATE TABLE webhook_endpoints (
    tenant_id              INTEGER PRIMARY KEY REFERENCES tenants (id),
    enabled                BOOLEAN NOT NULL,
    url                    TEXT    NOT NULL,
    -- DISABLE | BASIC | DIGEST | BEARER
    auth                   TEXT    NOT NULL,
    username               TEXT    NOT NULL DEFAULT '',
    password               TEXT    NOT NULL DEFAULT '',
    token                  TEXT    NOT NULL DEFAULT '',
    -- `whsec_…`; the previous one keeps signing until previous_secret_until
    secret                 TEXT,
    previous_secret        TEXT,
    previous_secret_until  INTEGER,
    -- JSON array of event types, NULL = every type
    event_types            TEXT,
    -- why the dispatcher turned it off (`gone`: 410, `failing`: 5 days of
    -- failures only), NULL when the admin did or it is on
    disabled_reason        TEXT,
    disabled_at            INTEGER,
    -- the first failure since the last success, NULL when healthy
    failing_since          INTEGER,
    updated_at             INTEGER NOT NULL
);

-- How far the outbox has been fanned out into deliveries. One row, locked by
-- every fan-out transaction, so nodes sharing a database fan out in turn.
CREATE TABLE webhook_cursor (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    last_global_sequence  INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, last_global_sequence)
    SELECT 1, last_sequence FROM global_sequence WHERE id = 1;

-- One row per event per endpoint, with its own copy of the payload: retries
-- run for up to ~2 days and must not depend on the outbox's retention.
CREATE TABLE webhook_deliveries (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    event_id          TEXT    NOT NULL,
    -- the tenant sequence of the event; 0 for a test event
    sequence          INTEGER NOT NULL,
    event_type        TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    -- pending | delivered | failed
    status            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    -- the node sending it now, until lease_until
    lease_owner       TEXT,
    -- what the next attempt is: scheduled | manual (retry, replay) | test
    next_trigger      TEXT    NOT NULL DEFAULT 'scheduled',
    -- retry/replay requests so far: one arriving during an attempt is not
    -- overwritten by that attempt's outcome
    manual_requests   INTEGER NOT NULL DEFAULT 0,
    lease_until       INTEGER,
    last_http_status  INTEGER,
    last_error        TEXT,
    updated_at        INTEGER NOT NULL,
    UNIQUE (tenant_id, event_id)
);
-- Due work: only pending rows, so claims and the scan stay small however
-- long the history grows.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (tenant_id, next_attempt_at, id)
    WHERE status = 'pending';
-- Pruning finished deliveries past their retention.
CREATE INDEX webhook_deliveries_updated ON webhook_deliveries (updated_at);
CREATE INDEX webhook_deliveries_sequence ON webhook_deliveries (tenant_id, sequence);

-- The delivery log: one row per attempt, and endpoint events
-- (`endpoint_disabled`).
CREATE TABLE webhook_log (
    id               INTEGER PRIMARY KEY,
    tenant_id        INTEGER NOT NULL REFERENCES tenants (id),
    delivery_id      INTEGER REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    -- attempt | endpoint_disabled
    kind             TEXT    NOT NULL,
    attempt          INTEGER,
    -- scheduled | manual | test
    trigger_kind     TEXT    NOT NULL,
    logged_at        INTEGER NOT NULL,
    duration_ms      INTEGER,
    -- success | http_error | redirect | timeout | connect_error | blocked |
    -- tls_error | protocol_error | gone | failing (endpoint_disabled)
    outcome          TEXT    NOT NULL,
    http_status      INTEGER,
    -- the first 4 KiB of the response body
    response         TEXT,
    error            TEXT,
    next_attempt_at  INTEGER
);
CREATE INDEX webhook_log_delivery ON webhook_log (delivery_id, id);
CREATE INDEX webhook_log_tenant ON webhook_log (tenant_id, id);
