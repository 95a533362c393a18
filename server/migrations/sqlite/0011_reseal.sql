-- Re-sealing. A sealed field (a case header, a referral's or a note's body) is sealed by the
-- writing client to the agencies that may read it; the hub works out who from the stored facts
-- until the field is first re-sealed, and from then on keeps the whole list here. A re-seal
-- replaces the field's ciphertext in place (the old one is sealed to a subset of the new one's
-- readers, so nothing is lost with it) and is remembered in `reseals` for the case thread.
CREATE TABLE sealed_readers (
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    field_kind TEXT NOT NULL CHECK (field_kind IN ('case_header', 'referral_body', 'note_body')),
    field_id TEXT NOT NULL,
    agency_id TEXT NOT NULL REFERENCES agencies (agency_id),
    PRIMARY KEY (field_kind, field_id, agency_id)
) STRICT;
CREATE INDEX sealed_readers_by_case ON sealed_readers (case_id);

CREATE TABLE reseals (
    reseal_id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (case_id),
    field_kind TEXT NOT NULL,
    field_id TEXT NOT NULL,
    resealed_by TEXT NOT NULL REFERENCES agencies (agency_id),
    staff_name TEXT NOT NULL,
    staff_role TEXT NOT NULL,
    -- The agency ids added, comma-separated.
    added_readers TEXT NOT NULL,
    resealed_at INTEGER NOT NULL
) STRICT;
CREATE INDEX reseals_by_case ON reseals (case_id, resealed_at);
