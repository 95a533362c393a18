-- The audit log: one row per call that read or wrote case data (or was refused), chained by
-- SHA-256 over a length-prefixed encoding of the row and the previous row's hash (see
-- server/src/domain/audit.rs). The hub assigns `sequence` as the head's plus one, inside the
-- advisory-locked write transaction, so there is one writer at a time across instances. Times are
-- milliseconds since the Unix epoch.
CREATE TABLE audit_records (
    sequence BIGINT PRIMARY KEY NOT NULL,
    recorded_at BIGINT NOT NULL,
    agency_id TEXT COLLATE "C" NOT NULL,
    staff_name TEXT,
    staff_role TEXT,
    action TEXT NOT NULL,
    municipality TEXT,
    case_id TEXT COLLATE "C",
    referral_id TEXT COLLATE "C",
    note_id TEXT COLLATE "C",
    consent_id TEXT COLLATE "C",
    basis TEXT,
    outcome TEXT NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_by_agency ON audit_records (agency_id, sequence);
CREATE INDEX audit_by_case ON audit_records (case_id, sequence);

-- Rows are only ever appended. These triggers stop accidents; the hash chain is what exposes
-- someone who drops them and edits the table anyway (`tsunagu-hub audit verify`).
CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;
CREATE TRIGGER audit_records_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
