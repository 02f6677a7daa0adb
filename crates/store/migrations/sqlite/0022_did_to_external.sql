-- DID rules may send a call out again to an outside number (issue 10:
-- `in2out`): destination_kind widens to 'external'. The list also holds
-- 'ivr' and 'queue', the destinations IVRs and queues bring (their own
-- migrations may widen it first; this one must not narrow it again).
-- SQLite cannot alter a CHECK, so the table is rebuilt (no other table
-- references it). Kept in lockstep with ../postgres/0022_did_to_external.sql.
CREATE TABLE inbound_rules_new (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    trunk_id          INTEGER NOT NULL REFERENCES trunks (id),
    did               TEXT    NOT NULL,
    -- exact | prefix
    match_kind        TEXT    NOT NULL CHECK (match_kind IN ('exact', 'prefix')),
    destination_kind  TEXT    NOT NULL
        CHECK (destination_kind IN ('extension', 'ring_group', 'ivr', 'queue', 'external')),
    -- an extension or a ring group's number, or the outside number
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
