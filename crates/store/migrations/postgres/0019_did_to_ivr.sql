-- DID rules may ring an IVR (issue 14): destination_kind widens to
-- 'ivr'. Kept in lockstep with ../sqlite/0019_did_to_ivr.sql.
ALTER TABLE inbound_rules DROP CONSTRAINT IF EXISTS inbound_rules_destination_kind_check;
ALTER TABLE inbound_rules ADD CONSTRAINT inbound_rules_destination_kind_check
    CHECK (destination_kind IN ('extension', 'ring_group', 'ivr'));
