-- Cases, consents, referrals with their three layers, notes, the per-agency event feed,
-- idempotency records and raised escalations. Times are milliseconds since the Unix epoch (UTC);
-- sealed payloads are age files the hub never reads.
CREATE TABLE cases (
    case_id TEXT PRIMARY KEY NOT NULL,
    municipality TEXT NOT NULL,
    category TEXT NOT NULL,
    stage TEXT NOT NULL,
    opened_by TEXT NOT NULL REFERENCES agencies (agency_id),
    opened_at INTEGER NOT NULL,
    header BLOB NOT NULL,
    council_registered INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX cases_by_municipality ON cases (municipality, opened_at);

CREATE TABLE case_participants (
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    agency_id TEXT NOT NULL REFERENCES agencies (agency_id),
    since INTEGER NOT NULL,
    PRIMARY KEY (case_id, agency_id)
) STRICT;
CREATE INDEX participants_by_agency ON case_participants (agency_id, case_id);

CREATE TABLE consents (
    consent_id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
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
    recorded_at INTEGER NOT NULL,
    withdrawn_at INTEGER,
    evidence BLOB
) STRICT;
CREATE INDEX consents_by_case ON consents (case_id);

CREATE TABLE referrals (
    referral_id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    municipality TEXT NOT NULL,
    from_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    to_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    purpose TEXT NOT NULL,
    urgency TEXT NOT NULL,
    basis TEXT NOT NULL,
    consent_id TEXT REFERENCES consents (consent_id),
    justification TEXT,
    hide_sender INTEGER NOT NULL,
    body BLOB NOT NULL,
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    deliver_by INTEGER NOT NULL,
    respond_by INTEGER NOT NULL,
    connect_by INTEGER NOT NULL,
    confirm_by INTEGER NOT NULL,
    delivery TEXT NOT NULL,
    delivered_at INTEGER,
    response TEXT NOT NULL,
    responded_at INTEGER,
    response_reason TEXT,
    connection TEXT NOT NULL,
    connection_updated_at INTEGER,
    contact_attempts INTEGER NOT NULL,
    not_connected_reason TEXT,
    linked_referral_id TEXT,
    confirmed_at INTEGER,
    confirmed_by TEXT,
    closed INTEGER NOT NULL
) STRICT;
CREATE INDEX referrals_by_case ON referrals (case_id, sent_at);
CREATE INDEX referrals_to ON referrals (to_agency, closed, sent_at);
CREATE INDEX referrals_from ON referrals (from_agency, closed, sent_at);
CREATE INDEX referrals_open ON referrals (closed, municipality);

CREATE TABLE referral_events (
    event_id TEXT PRIMARY KEY NOT NULL,
    referral_id TEXT NOT NULL REFERENCES referrals (referral_id),
    case_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT,
    timer TEXT,
    actor_agency TEXT,
    staff_name TEXT,
    staff_role TEXT,
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    reason_code TEXT,
    not_connected_reason TEXT,
    note BLOB,
    delivery TEXT NOT NULL,
    response TEXT NOT NULL,
    connection TEXT NOT NULL
) STRICT;
CREATE INDEX referral_events_by_referral ON referral_events (referral_id, recorded_at);
CREATE INDEX referral_events_by_case ON referral_events (case_id, recorded_at);

CREATE TABLE notes (
    note_id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    from_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    purpose TEXT NOT NULL,
    basis TEXT NOT NULL,
    consent_id TEXT,
    justification TEXT,
    hide_sender INTEGER NOT NULL,
    body BLOB NOT NULL,
    sent_at INTEGER NOT NULL
) STRICT;
CREATE INDEX notes_by_case ON notes (case_id, sent_at);

CREATE TABLE note_recipients (
    note_id TEXT NOT NULL REFERENCES notes (note_id),
    agency_id TEXT NOT NULL REFERENCES agencies (agency_id),
    acknowledged_at INTEGER,
    PRIMARY KEY (note_id, agency_id)
) STRICT;

-- Each agency's feed. The cursor is global and increasing; an agency sees its own rows only.
CREATE TABLE feed_events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    agency_id TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    case_id TEXT,
    referral_id TEXT,
    note_id TEXT,
    referral_event_id TEXT,
    recorded_at INTEGER NOT NULL
) STRICT;
CREATE INDEX feed_by_agency ON feed_events (agency_id, cursor);

CREATE TABLE feed_acknowledgements (
    agency_id TEXT PRIMARY KEY NOT NULL,
    cursor INTEGER NOT NULL,
    acknowledged_at INTEGER NOT NULL
) STRICT;

-- A write's idempotency key, the digest of the request it was first used with, and the answer.
CREATE TABLE idempotency_keys (
    agency_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_digest BLOB NOT NULL,
    response BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (agency_id, operation, idempotency_key)
) STRICT;

-- One row per raised escalation, so each timer escalates once per tier.
CREATE TABLE escalations (
    referral_id TEXT NOT NULL REFERENCES referrals (referral_id),
    timer TEXT NOT NULL,
    tier TEXT NOT NULL,
    raised_at INTEGER NOT NULL,
    PRIMARY KEY (referral_id, timer, tier)
) STRICT;
