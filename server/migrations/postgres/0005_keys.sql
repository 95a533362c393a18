-- The agency key directory: each agency's published age X25519 recipients. Public keys only; the
-- hub holds no age identity. A fingerprint (SHA-256 hex of the recipient text) names one key
-- across all agencies. Retired keys stay, marked with when and by whom they were retired.
CREATE TABLE agency_keys (
    agency_id TEXT COLLATE "C" NOT NULL REFERENCES agencies (agency_id),
    fingerprint TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    recipient TEXT COLLATE "C" NOT NULL UNIQUE,
    published_at BIGINT NOT NULL,
    published_by_name TEXT NOT NULL,
    published_by_role TEXT NOT NULL,
    retired_at BIGINT,
    retired_by_name TEXT,
    retired_by_role TEXT
);
CREATE INDEX agency_keys_by_agency ON agency_keys (agency_id, published_at);
