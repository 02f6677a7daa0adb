-- DID rules may ring a ring group (issue 10): destination_kind widens to
-- 'ring_group'. Kept in lockstep with ../sqlite/0016_did_to_ring_group.sql.
ALTER TABLE inbound_rules DROP CONSTRAINT IF EXISTS inbound_rules_destination_kind_check;
ALTER TABLE inbound_rules ADD CONSTRAINT inbound_rules_destination_kind_check
    CHECK (destination_kind IN ('extension', 'ring_group'));
