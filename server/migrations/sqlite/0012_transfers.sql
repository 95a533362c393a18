-- 移管: transfers of a case between municipalities when a family moves, and the timers of a
-- transfer the hub escalated (once each). Times are milliseconds since the Unix epoch (UTC); the
-- note (引継ぎ事項) is an age file the hub never reads. A case has at most one transfer in
-- progress (proposed or acknowledged).
CREATE TABLE transfers (
    transfer_id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    from_municipality TEXT NOT NULL,
    to_municipality TEXT NOT NULL,
    proposed_by TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    basis TEXT NOT NULL,
    consent_id TEXT,
    justification TEXT,
    note BLOB,
    state TEXT NOT NULL
        CHECK (state IN ('proposed', 'acknowledged', 'accepted', 'declined', 'withdrawn')),
    proposed_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT REFERENCES agencies (agency_id),
    responded_at INTEGER,
    responded_by TEXT REFERENCES agencies (agency_id),
    responded_staff_name TEXT,
    responded_staff_role TEXT,
    lead_agency TEXT REFERENCES agencies (agency_id),
    receiving_case_id TEXT REFERENCES cases (case_id),
    receiving_case_opened INTEGER NOT NULL DEFAULT 0,
    decline_reason TEXT,
    decline_text TEXT,
    withdrawn_at INTEGER,
    deliver_by INTEGER NOT NULL,
    respond_by INTEGER NOT NULL,
    accept_by INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX transfers_by_case ON transfers (case_id, proposed_at);
CREATE INDEX transfers_by_receiving_case ON transfers (receiving_case_id);
CREATE INDEX transfers_from ON transfers (from_municipality, proposed_at);
CREATE INDEX transfers_to ON transfers (to_municipality, proposed_at);
CREATE INDEX transfers_in_progress ON transfers (state, accept_by);
CREATE UNIQUE INDEX transfers_one_in_progress_per_case ON transfers (case_id)
    WHERE state IN ('proposed', 'acknowledged');

CREATE TABLE transfer_escalations (
    transfer_id TEXT NOT NULL REFERENCES transfers (transfer_id),
    timer TEXT NOT NULL CHECK (timer IN ('deliver', 'respond', 'accept')),
    raised_at INTEGER NOT NULL,
    PRIMARY KEY (transfer_id, timer)
) STRICT;
