-- Writes that do not all queue behind one lock (issue 18). A write transaction appends its feed
-- entries and audit records last, in one call of this function, just before its commit:
--
-- 1. it takes the advisory lock of every agency whose feed grows (sorted, so two writers never
--    wait for each other in a circle) and inserts the feed rows, whose cursors are drawn now;
-- 2. it sends the NOTIFY that other hub instances wake their subscribers with (delivered only
--    if the transaction commits);
-- 3. when there are audit records, it takes the audit chain's lock, reads the head as it stands
--    then, and chains the records after it: record n's hash is the SHA-256 of
--    hash_prefix, the sequence number as a field (length 8, big-endian), the entry's fields
--    (audit_bodies, encoded by the hub) and the previous hash as a field (length 32); the same
--    bytes the hub hashes (domain::audit::record_hash), so `audit verify` checks them alike.
--
-- The locks last until the transaction ends, so each agency's feed cursors become visible in
-- the order they were drawn, and the chain has one writer at its tail. Everything before this
-- call runs side by side for writes about different cases.
CREATE FUNCTION tsunagu_write_tail(
    feed_agencies TEXT[], channel TEXT, payload TEXT,
    f_agency TEXT[], f_event TEXT[], f_kind TEXT[], f_case TEXT[], f_referral TEXT[],
    f_note TEXT[], f_referral_event TEXT[], f_recorded BIGINT[],
    hash_prefix BYTEA,
    a_recorded BIGINT[], a_agency TEXT[], a_staff_name TEXT[], a_staff_role TEXT[],
    a_action TEXT[], a_municipality TEXT[], a_case TEXT[], a_referral TEXT[], a_note TEXT[],
    a_consent TEXT[], a_basis TEXT[], a_outcome TEXT[], a_body BYTEA[])
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    feed_key BIGINT;
    head_sequence BIGINT;
    head_hash BYTEA;
    n INTEGER;
BEGIN
    FOR feed_key IN
        SELECT DISTINCT hashtextextended('tsunagu:feed:' || agency, 0)
        FROM unnest(feed_agencies) AS agency ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(feed_key);
    END LOOP;
    IF cardinality(f_agency) > 0 THEN
        INSERT INTO feed_events (agency_id, event_id, kind, case_id, referral_id, note_id,
            referral_event_id, recorded_at)
        SELECT r.a, r.e, r.k, r.c, r.rf, r.nt, r.re, r.at
        FROM unnest(f_agency, f_event, f_kind, f_case, f_referral, f_note,
            f_referral_event, f_recorded) WITH ORDINALITY AS r(a, e, k, c, rf, nt, re, at, i)
            ORDER BY r.i;
    END IF;
    IF payload IS NOT NULL THEN
        PERFORM pg_notify(channel, payload);
    END IF;
    IF cardinality(a_body) > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('tsunagu:audit', 0));
        -- A statement of its own, so it sees every record committed before the lock was had.
        SELECT a.sequence, a.hash INTO head_sequence, head_hash FROM audit_records a
            ORDER BY a.sequence DESC LIMIT 1;
        IF head_sequence IS NULL THEN
            head_sequence := 0;
            head_hash := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        END IF;
        FOR n IN 1 .. cardinality(a_body) LOOP
            head_sequence := head_sequence + 1;
            head_hash := sha256(hash_prefix
                || '\x0000000000000008'::bytea || int8send(head_sequence)
                || a_body[n]
                || '\x0000000000000020'::bytea || head_hash);
            INSERT INTO audit_records (sequence, recorded_at, agency_id, staff_name, staff_role,
                action, municipality, case_id, referral_id, note_id, consent_id, basis, outcome,
                hash)
            VALUES (head_sequence, a_recorded[n], a_agency[n], a_staff_name[n], a_staff_role[n],
                a_action[n], a_municipality[n], a_case[n], a_referral[n], a_note[n],
                a_consent[n], a_basis[n], a_outcome[n], head_hash);
        END LOOP;
    END IF;
    RETURN head_sequence;
END;
$$;
