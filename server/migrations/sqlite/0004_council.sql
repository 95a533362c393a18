-- 要対協 (要保護児童対策地域協議会): one registration per case (registering a case again after it
-- ended replaces the row; the decisions keep the history), meetings with their fixed agendas, and
-- the decisions recorded back. Dates are civil dates in Japan (YYYY-MM-DD); times are
-- milliseconds since the Unix epoch (UTC); sealed payloads are age files the hub never reads.
CREATE TABLE council_registrations (
    case_id TEXT PRIMARY KEY NOT NULL REFERENCES cases (case_id),
    municipality TEXT NOT NULL,
    category TEXT NOT NULL,
    registered_on TEXT NOT NULL,
    lead_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    key_person BLOB,
    review_interval_days INTEGER NOT NULL,
    next_review_on TEXT NOT NULL,
    last_reviewed_on TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'closed', 'transferred')),
    reason TEXT,
    transferred_to TEXT,
    ended_on TEXT,
    justification TEXT,
    registered_by TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
-- The default agenda: a municipality's active registrations due by a day.
CREATE INDEX council_registrations_due ON council_registrations (municipality, status, next_review_on);

CREATE TABLE council_meetings (
    meeting_id TEXT PRIMARY KEY NOT NULL,
    municipality TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('representatives', 'practitioners', 'individual_case')),
    held_on TEXT NOT NULL,
    scheduled_by TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL
) STRICT;
CREATE INDEX council_meetings_by_municipality ON council_meetings (municipality, held_on);

-- A meeting's agenda, in the order its cases are taken up.
CREATE TABLE council_meeting_cases (
    meeting_id TEXT NOT NULL REFERENCES council_meetings (meeting_id),
    position INTEGER NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    PRIMARY KEY (meeting_id, case_id)
) STRICT;

-- One decision per case and meeting. held_on repeats the meeting's day (meetings never move) so
-- a case's decisions read without a join.
CREATE TABLE council_decisions (
    decision_id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES council_meetings (meeting_id),
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    held_on TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('continue', 'close', 'transfer')),
    reason TEXT,
    transfer_to TEXT,
    lead_agency TEXT NOT NULL REFERENCES agencies (agency_id),
    plan BLOB,
    next_review_on TEXT,
    decided_by TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    UNIQUE (meeting_id, case_id)
) STRICT;
CREATE INDEX council_decisions_by_case ON council_decisions (case_id, decided_at);
