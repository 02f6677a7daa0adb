-- Trunks and routing rules (issue 10), sqlite flavour. Keep in lockstep with
-- ../postgres/0011_trunks.sql. Times are Unix milliseconds (UTC).

-- A tenant's carrier accounts.
CREATE TABLE trunks (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    name              TEXT    NOT NULL,
    -- register | ip
    kind              TEXT    NOT NULL CHECK (kind IN ('register', 'ip')),
    host              TEXT    NOT NULL,
    port              INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    -- udp | tcp
    transport         TEXT    NOT NULL CHECK (transport IN ('udp', 'tcp')),
    username          TEXT    NOT NULL DEFAULT '',
    auth_username     TEXT    NOT NULL DEFAULT '',
    -- the PBX's own credential toward the carrier: kept as given, since
    -- answering the carrier's challenges needs it (DESIGN.md, Storage)
    password          TEXT    NOT NULL DEFAULT '',
    realm             TEXT    NOT NULL DEFAULT '',
    from_domain       TEXT    NOT NULL DEFAULT '',
    caller_id         TEXT    NOT NULL DEFAULT '',
    country_code      TEXT    NOT NULL DEFAULT '',
    -- NULL: no limit
    max_calls         INTEGER CHECK (max_calls > 0),
    -- NULL: send to host
    outbound_proxy    TEXT,
    -- JSON array of addresses/networks (ip trunks)
    source_addresses  TEXT    NOT NULL DEFAULT '[]',
    -- NULL: any source port
    source_port       INTEGER CHECK (source_port BETWEEN 1 AND 65535),
    register_expires  INTEGER NOT NULL DEFAULT 3600 CHECK (register_expires > 0),
    enabled           BOOLEAN NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

-- DIDs (or blocks of them) a trunk delivers, and where their calls go.
CREATE TABLE inbound_rules (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    trunk_id          INTEGER NOT NULL REFERENCES trunks (id),
    did               TEXT    NOT NULL,
    -- exact | prefix
    match_kind        TEXT    NOT NULL CHECK (match_kind IN ('exact', 'prefix')),
    -- extension (ring groups, IVRs and queues later)
    destination_kind  TEXT    NOT NULL CHECK (destination_kind IN ('extension')),
    destination       TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (trunk_id, did, match_kind)
);
CREATE INDEX inbound_rules_tenant ON inbound_rules (tenant_id, trunk_id);

-- Ordered outbound rules of a tenant.
CREATE TABLE outbound_rules (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants (id),
    name              TEXT    NOT NULL,
    -- evaluation order, lowest first
    priority          INTEGER NOT NULL,
    pattern           TEXT    NOT NULL,
    -- JSON array of extensions; [] = every caller
    from_extensions   TEXT    NOT NULL DEFAULT '[]',
    strip_digits      INTEGER NOT NULL DEFAULT 0 CHECK (strip_digits >= 0),
    prepend           TEXT    NOT NULL DEFAULT '',
    caller_id         TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

-- The trunks of an outbound rule, in failover order. A trunk a rule uses
-- cannot be deleted (the foreign key refuses it).
CREATE TABLE outbound_rule_trunks (
    rule_id   INTEGER NOT NULL REFERENCES outbound_rules (id),
    position  INTEGER NOT NULL,
    trunk_id  INTEGER NOT NULL REFERENCES trunks (id),
    PRIMARY KEY (rule_id, position)
);
CREATE INDEX outbound_rule_trunks_trunk ON outbound_rule_trunks (trunk_id);
