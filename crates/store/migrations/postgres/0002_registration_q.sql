-- The Contact's `q` (RFC 3261 §10.2.1.2) of each binding, in thousandths
-- (q=0.5 -> 500); NULL when the device sent none. Restored into the
-- registrar with the binding, so a restart keeps the preference order.
ALTER TABLE registrations ADD COLUMN q BIGINT;
