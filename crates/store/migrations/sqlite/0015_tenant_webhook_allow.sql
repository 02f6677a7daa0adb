-- Per-tenant webhook allow-list (issue 17 finding 14), sqlite flavour. Keep
-- in lockstep with ../postgres/0015_tenant_webhook_allow.sql.
--
-- The CIDR blocks of non-public addresses this tenant's webhook may reach,
-- on top of the node's [webhooks] allow: space-separated, set by the
-- system admin only (PUT /api/tenants/{tenant_id}/webhook_allow), checked
-- by the delivery crate's SSRF guard. '' allows nothing more.
ALTER TABLE tenants ADD COLUMN webhook_allow TEXT NOT NULL DEFAULT '';
