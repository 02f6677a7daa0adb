-- Who may dial out (issue 10), sqlite flavour. Keep in lockstep with the
-- other backend's 0012_outbound_permissions.sql.

-- New and existing users may dial out until an admin says otherwise.
ALTER TABLE users ADD COLUMN outbound_allowed BOOLEAN NOT NULL DEFAULT TRUE;
-- The caller ID presented on trunks when the outbound rule has none.
ALTER TABLE users ADD COLUMN outbound_caller_id TEXT NOT NULL DEFAULT '';
-- Outbound calls of the tenant at once; NULL: no limit.
ALTER TABLE tenants ADD COLUMN max_outbound_calls INTEGER CHECK (max_outbound_calls > 0);
