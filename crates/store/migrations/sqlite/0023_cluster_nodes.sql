-- Issue 15: the nodes sharing this database, for liveness and take-over.
-- A node upserts its row at start (clearing any claim), bumps
-- heartbeat_at every few seconds; a survivor that finds a row silent past
-- the lease claims it with one conditional UPDATE (claimed_by/claimed_at)
-- and closes the dead node's open sessions; closed_at says it is done.
-- Times are Unix ms of the writing node's clock. Kept in lockstep with
-- ../postgres/0023_cluster_nodes.sql.
CREATE TABLE nodes (
    node_id      INTEGER PRIMARY KEY CHECK (node_id BETWEEN 0 AND 1023),
    address      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    claimed_by   INTEGER,
    claimed_at   INTEGER,
    closed_at    INTEGER
);
