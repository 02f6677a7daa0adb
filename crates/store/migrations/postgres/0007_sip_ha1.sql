-- Hashed SIP credentials (issue 17), postgres flavour. Keep in lockstep with
-- ../sqlite/0007_sip_ha1.sql.
--
-- The digest HA1s of each user's SIP password, H(extension:realm:password)
-- for MD5 and SHA-256, and the realm they were computed for (as Kamailio's
-- ha1 columns), instead of the password. Existing rows keep their
-- plaintext in sip_password until the binary's start-up hashes them and
-- blanks it (SQL has no MD5 on SQLite, and the digest arithmetic lives in
-- one place, the sip crate); new rows never write it. Empty hashes: no SIP
-- password set.
ALTER TABLE users ADD COLUMN sip_realm TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN sip_ha1_md5 TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN sip_ha1_sha256 TEXT NOT NULL DEFAULT '';
