-- CDR queries (issue 5), SQLite flavour. Keep in lockstep with
-- ../postgres/0005_cdr_queries.sql.

-- A filtered page at 10 M rows per tenant. The common shapes are "a time
-- range, newest first" (cdrs_tenant_started, from 0001) and "one number in a
-- time range, newest first": with started_at and cdr_id after the number, the
-- index both finds the rows and yields them in page order, so a page reads
-- `top` index entries instead of sorting every call of that number.
-- session_id is UNIQUE already (0001).
DROP INDEX cdrs_tenant_caller;
DROP INDEX cdrs_tenant_callee;
CREATE INDEX cdrs_tenant_caller ON cdrs (tenant_id, caller, started_at, cdr_id);
CREATE INDEX cdrs_tenant_callee ON cdrs (tenant_id, callee, started_at, cdr_id);

-- The call's REST reroute_reason (its first rerouted target's), kept on the
-- call row so a listing or an export need not read the targets for it;
-- written by the store at commit, backfilled here.
ALTER TABLE cdrs ADD COLUMN reroute_reason TEXT;
UPDATE cdrs SET reroute_reason = (
    SELECT t.reroute_reason FROM cdr_targets t
    WHERE t.cdr_id = cdrs.cdr_id AND t.reroute_reason IS NOT NULL
    ORDER BY t.ordinal LIMIT 1
);

-- /api/user/cdrs: the calls that rang an extension as a target.
CREATE INDEX cdr_targets_callee ON cdr_targets (callee);

-- Personal CDR sync tokens (store/src/sync.rs): a bookmark in the tenant's
-- outbox sequence, per user.
CREATE TABLE cdr_sync_tokens (
    token       TEXT    PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the tenant's outbox sequence up to which the user has the changes
    position    INTEGER NOT NULL,
    -- lower bound on started_at (Unix ms) asked for with date_from
    date_from   INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX cdr_sync_tokens_created_at ON cdr_sync_tokens (created_at);
