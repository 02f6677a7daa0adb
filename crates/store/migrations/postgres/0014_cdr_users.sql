-- Whose calls a CDR holds (issue 17 finding 11), postgres flavour. Keep in
-- lockstep with ../sqlite/0014_cdr_users.sql.
--
-- /api/user/cdrs matched on the extension number, so the next owner of a
-- reused extension saw the previous owner's calls. The PBX now records
-- the users' ids (no foreign key: a deleted user's CDRs stay as they are):
-- the caller's and the first destination's on the call, the rung user's on
-- each target. NULL: not a user (an outside number, a trunk, a URI).
ALTER TABLE cdrs ADD COLUMN caller_user_id BIGINT;
ALTER TABLE cdrs ADD COLUMN callee_user_id BIGINT;
ALTER TABLE cdr_targets ADD COLUMN user_id BIGINT;

-- Rows written before this migration: attributed to whoever has the
-- number now, with the direction rules the extension match used (the best
-- that is known; a number reused before the upgrade stays attributed to
-- its current owner).
UPDATE cdrs SET caller_user_id = (
    SELECT u.id FROM users u WHERE u.tenant_id = cdrs.tenant_id AND u.extension = cdrs.caller
) WHERE direction IN ('ext', 'out');
UPDATE cdrs SET callee_user_id = (
    SELECT u.id FROM users u WHERE u.tenant_id = cdrs.tenant_id AND u.extension = cdrs.callee
) WHERE direction IN ('ext', 'in');
UPDATE cdr_targets SET user_id = (
    SELECT u.id FROM users u JOIN cdrs c ON c.tenant_id = u.tenant_id
    WHERE c.cdr_id = cdr_targets.cdr_id AND u.extension = cdr_targets.callee
) WHERE trunk_name = '';

-- The user's calls, newest first (the union in store/src/query/compile.rs).
CREATE INDEX cdrs_tenant_caller_user ON cdrs (tenant_id, caller_user_id, started_at, cdr_id);
CREATE INDEX cdrs_tenant_callee_user ON cdrs (tenant_id, callee_user_id, started_at, cdr_id);
CREATE INDEX cdr_targets_user ON cdr_targets (user_id);
