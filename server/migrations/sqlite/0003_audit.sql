-- The audit log: one row per call that read or wrote case data (or was refused), chained by
-- SHA-256 over a length-prefixed encoding of the row and the previous row's hash (see
-- server/src/domain/audit.rs). The hub assigns `sequence` as the head's plus one, inside the
-- write transaction, so there is one writer at a time. Times are milliseconds since the Unix epoch.
CREATE TABLE audit_records (
    sequence INTEGER PRIMARY KEY NOT NULL,
    recorded_at INTEGER NOT NULL,
    agency_id TEXT NOT NULL,
    staff_name TEXT,
    staff_role TEXT,
    action TEXT NOT NULL,
    municipality TEXT,
    case_id TEXT,
    referral_id TEXT,
    note_id TEXT,
    consent_id TEXT,
    basis TEXT,
    outcome TEXT NOT NULL,
    hash BLOB NOT NULL
) STRICT;
CREATE INDEX audit_by_agency ON audit_records (agency_id, sequence);
CREATE INDEX audit_by_case ON audit_records (case_id, sequence);

-- Rows are only ever appended. These triggers stop accidents; the hash chain is what exposes
-- someone who drops them and edits the table anyway (`tsunagu-hub audit verify`).
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
