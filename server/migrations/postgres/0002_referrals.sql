-- Cases, consents, referrals with their three layers, notes, the per-agency event feed,
-- idempotency records and raised escalations. Times are milliseconds since the Unix epoch (UTC);
-- sealed payloads are age files the hub never reads.
CREATE TABLE cases (
    case_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    municipality TEXT NOT NULL,
    category TEXT NOT NULL,
    stage TEXT NOT NULL,
    opened_by TEXT NOT NULL REFERENCES agencies (agency_id),
    opened_at BIGINT NOT NULL,
    header BYTEA NOT NULL,
    council_registered BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX cases_by_municipality ON cases (municipality, opened_at);

CREATE TABLE case_participants (
    case_id TEXT COLLATE "C" NOT NULL REFERENCES cases (case_id),
    agency_id TEXT COLLATE "C" NOT NULL REFERENCES agencies (agency_id),
    since BIGINT NOT NULL,
    PRIMARY KEY (case_id, agency_id)
);
CREATE INDEX participants_by_agency ON case_participants (agency_id, case_id);

CREATE TABLE consents (
    consent_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    case_id TEXT COLLATE "C" NOT NULL REFERENCES cases (case_id),
    given_by TEXT NOT NULL,
    method TEXT NOT NULL,
    recorded_by TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    recipient_agencies TEXT NOT NULL,
    recipient_kinds TEXT NOT NULL,
    purposes TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT,
    recorded_at BIGINT NOT NULL,
    withdrawn_at BIGINT,
    evidence BYTEA
);
CREATE INDEX consents_by_case ON consents (case_id);

CREATE TABLE referrals (
    referral_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    case_id TEXT COLLATE "C" NOT NULL REFERENCES cases (case_id),
    municipality TEXT NOT NULL,
    from_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    to_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    purpose TEXT NOT NULL,
    urgency TEXT NOT NULL,
    basis TEXT NOT NULL,
    consent_id TEXT COLLATE "C" REFERENCES consents (consent_id),
    justification TEXT,
    hide_sender BIGINT NOT NULL,
    body BYTEA NOT NULL,
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    deliver_by BIGINT NOT NULL,
    respond_by BIGINT NOT NULL,
    connect_by BIGINT NOT NULL,
    confirm_by BIGINT NOT NULL,
    delivery TEXT NOT NULL,
    delivered_at BIGINT,
    response TEXT NOT NULL,
    responded_at BIGINT,
    response_reason TEXT,
    connection TEXT NOT NULL,
    connection_updated_at BIGINT,
    contact_attempts BIGINT NOT NULL,
    not_connected_reason TEXT,
    linked_referral_id TEXT COLLATE "C",
    confirmed_at BIGINT,
    confirmed_by TEXT,
    closed BIGINT NOT NULL
);
CREATE INDEX referrals_by_case ON referrals (case_id, sent_at);
CREATE INDEX referrals_to ON referrals (to_agency, closed, sent_at);
CREATE INDEX referrals_from ON referrals (from_agency, closed, sent_at);
CREATE INDEX referrals_open ON referrals (closed, municipality);

CREATE TABLE referral_events (
    event_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    referral_id TEXT COLLATE "C" NOT NULL REFERENCES referrals (referral_id),
    case_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    action TEXT,
    timer TEXT,
    actor_agency TEXT,
    staff_name TEXT,
    staff_role TEXT,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    reason_code TEXT,
    not_connected_reason TEXT,
    note BYTEA,
    delivery TEXT NOT NULL,
    response TEXT NOT NULL,
    connection TEXT NOT NULL
);
CREATE INDEX referral_events_by_referral ON referral_events (referral_id, recorded_at);
CREATE INDEX referral_events_by_case ON referral_events (case_id, recorded_at);

CREATE TABLE notes (
    note_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    case_id TEXT COLLATE "C" NOT NULL REFERENCES cases (case_id),
    from_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    purpose TEXT NOT NULL,
    basis TEXT NOT NULL,
    consent_id TEXT COLLATE "C",
    justification TEXT,
    hide_sender BIGINT NOT NULL,
    body BYTEA NOT NULL,
    sent_at BIGINT NOT NULL
);
CREATE INDEX notes_by_case ON notes (case_id, sent_at);

CREATE TABLE note_recipients (
    note_id TEXT COLLATE "C" NOT NULL REFERENCES notes (note_id),
    agency_id TEXT COLLATE "C" NOT NULL REFERENCES agencies (agency_id),
    acknowledged_at BIGINT,
    PRIMARY KEY (note_id, agency_id)
);

-- Each agency's feed. The cursor is global and increasing; an agency sees its own rows only.
CREATE TABLE feed_events (
    cursor BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    case_id TEXT COLLATE "C",
    referral_id TEXT COLLATE "C",
    note_id TEXT COLLATE "C",
    referral_event_id TEXT COLLATE "C",
    recorded_at BIGINT NOT NULL
);
CREATE INDEX feed_by_agency ON feed_events (agency_id, cursor);

CREATE TABLE feed_acknowledgements (
    agency_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    cursor BIGINT NOT NULL,
    acknowledged_at BIGINT NOT NULL
);

-- A write's idempotency key, the digest of the request it was first used with, and the answer.
CREATE TABLE idempotency_keys (
    agency_id TEXT COLLATE "C" NOT NULL,
    operation TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_digest BYTEA NOT NULL,
    response BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (agency_id, operation, idempotency_key)
);

-- One row per raised escalation, so each timer escalates once per tier.
CREATE TABLE escalations (
    referral_id TEXT COLLATE "C" NOT NULL REFERENCES referrals (referral_id),
    timer TEXT NOT NULL,
    tier TEXT NOT NULL,
    raised_at BIGINT NOT NULL,
    PRIMARY KEY (referral_id, timer, tier)
);
