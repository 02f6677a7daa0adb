-- The web console (issue 12). Keep in lockstep with the other backend's
-- 0010_console.sql.

-- A CDR's detail page lists the call's events in order: one session's
-- outbox rows, found without scanning the tenant's whole retention window.
CREATE INDEX outbox_session ON outbox (tenant_id, session_id, sequence);
