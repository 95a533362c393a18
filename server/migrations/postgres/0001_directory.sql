-- The agency directory and the hub-side certificate revocation list.
CREATE TABLE agencies (
    agency_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- Municipality codes, comma-separated (six digits each).
    municipalities TEXT NOT NULL,
    council_memberships TEXT NOT NULL,
    coordinator_of TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE revoked_certificates (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
