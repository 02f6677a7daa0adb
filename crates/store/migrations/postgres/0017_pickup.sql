-- Call pickup (issue 13): a user's pickup group ('' = none) and each
-- tenant's pickup feature codes (group pickup, and the directed pickup
-- prefix followed by an extension). Kept in lockstep with the other
-- backend's 0017_pickup.sql.
ALTER TABLE users ADD COLUMN pickup_group TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN pickup_code TEXT NOT NULL DEFAULT '*8';
ALTER TABLE tenants ADD COLUMN directed_pickup_prefix TEXT NOT NULL DEFAULT '**';
