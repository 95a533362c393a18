-- The agency key directory: each agency's published age X25519 recipients. Public keys only; the
-- hub holds no age identity. A fingerprint (SHA-256 hex of the recipient text) names one key
-- across all agencies. Retired keys stay, marked with when and by whom they were retired.
CREATE TABLE agency_keys (
    agency_id TEXT NOT NULL REFERENCES agencies (agency_id),
    fingerprint TEXT PRIMARY KEY NOT NULL,
    recipient TEXT NOT NULL UNIQUE,
    published_at INTEGER NOT NULL,
    published_by_name TEXT NOT NULL,
    published_by_role TEXT NOT NULL,
    retired_at INTEGER,
    retired_by_name TEXT,
    retired_by_role TEXT
) STRICT;
CREATE INDEX agency_keys_by_agency ON agency_keys (agency_id, published_at);
