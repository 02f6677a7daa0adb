-- DID rules may ring an IVR (issue 14): destination_kind widens to
-- 'ivr'. SQLite cannot alter a CHECK, so the table is rebuilt (no
-- other table references it). Kept in lockstep with
-- ../postgres/0019_did_to_ivr.sql.
CREATE TABLE inbound_rules_new (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    trunk_id          INTEGER NOT NULL REFERENCES trunks (id),
    did               TEXT    NOT NULL,
    -- exact | prefix
    match_kind        TEXT    NOT NULL CHECK (match_kind IN ('exact', 'prefix')),
    -- extension | ring_group | ivr (queues later)
    destination_kind  TEXT    NOT NULL CHECK (destination_kind IN ('extension', 'ring_group', 'ivr')),
    destination       TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (trunk_id, did, match_kind)
);
INSERT INTO inbound_rules_new
    (id, tenant_id, trunk_id, did, match_kind, destination_kind, destination, created_at, updated_at)
SELECT id, tenant_id, trunk_id, did, match_kind, destination_kind, destination, created_at, updated_at
FROM inbound_rules;
DROP TABLE inbound_rules;
ALTER TABLE inbound_rules_new RENAME TO inbound_rules;
CREATE INDEX inbound_rules_tenant ON inbound_rules (tenant_id, trunk_id);
