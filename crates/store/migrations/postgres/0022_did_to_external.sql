-- DID rules may send a call out again to an outside number (issue 10:
-- `in2out`): destination_kind widens to 'external'. The list also holds
-- 'ivr' and 'queue', the destinations IVRs and queues bring (their own
-- migrations may widen it first; this one must not narrow it again).
-- Kept in lockstep with ../sqlite/0022_did_to_external.sql.
ALTER TABLE inbound_rules DROP CONSTRAINT IF EXISTS inbound_rules_destination_kind_check;
ALTER TABLE inbound_rules ADD CONSTRAINT inbound_rules_destination_kind_check
    CHECK (destination_kind IN ('extension', 'ring_group', 'ivr', 'queue', 'external'));
