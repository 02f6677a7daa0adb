-- Security review, finding 5: a sign-in (a refresh-token family) has an
-- absolute lifetime, counted from the sign-in, which every rotation copies.
-- NULL (tokens issued before this migration): the token's own created_at.
ALTER TABLE auth_tokens ADD COLUMN family_started_at INTEGER;
