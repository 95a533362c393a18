-- The client certificates each agency presented, so that the hub can warn before the one an
-- agency last used expires. Public metadata only: fingerprint and expiry, no key.
CREATE TABLE agency_certificates (
    agency_id TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    -- Seconds since the Unix epoch.
    not_after BIGINT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (agency_id, fingerprint)
);
