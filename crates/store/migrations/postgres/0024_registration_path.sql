-- Issue 15: the Path (RFC 3327) a REGISTER came with, as the registrar
-- stored it: the proxies (Kamailio) in front of the node that took it,
-- one route value (`<uri>`) per line, '' when it came directly. Requests to the
-- contact carry it as their Route, so any node reaches the phone through
-- the same proxy. Kept in lockstep with ../sqlite/0024_registration_path.sql.
ALTER TABLE registrations ADD COLUMN path TEXT NOT NULL DEFAULT '';
