-- The audit chain's tail off the write path (issue 18): with 0013, every write that appended
-- audit records took the chain's one lock at its tail and held it through its commit, WAL flush
-- included, so commits could not share a flush. Now a write only queues its records, with their
-- hashed bytes, in `audit_pending` (no chain lock: the row is durable with the commit), and a
-- sequencer chains them afterwards, in batches, in `tsunagu_chain_pending`: one transaction
-- holding the chain's lock takes the oldest pending rows (by id), chains them after the head
-- exactly as 0013 did and moves them into `audit_records`. The chain stays one chain, in the
-- sequencer's order; the hub chains what is pending before every read of the chain, so no reader
-- sees a chain without a record whose write was answered.
CREATE TABLE audit_pending (
    id BIGSERIAL PRIMARY KEY,
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
    -- The record's fields as its hash covers them (domain::audit::hash_body), encoded by the hub.
    body BYTEA NOT NULL
);

-- The same arguments as 0013's (so an instance of the previous version, during an upgrade,
-- calls this one): feed rows as before, under their agencies' locks; audit records queued
-- without any lock. `hash_prefix` is no longer needed here: the sequencer is given it. Returns
-- how many audit records were queued.
CREATE OR REPLACE FUNCTION tsunagu_write_tail(
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
        -- In the order appended: ids are drawn row by row in this order.
        INSERT INTO audit_pending (recorded_at, agency_id, staff_name, staff_role, action,
            municipality, case_id, referral_id, note_id, consent_id, basis, outcome, body)
        SELECT r.at, r.ag, r.sn, r.sr, r.ac, r.mu, r.ca, r.rf, r.nt, r.co, r.ba, r.ou, r.bo
        FROM unnest(a_recorded, a_agency, a_staff_name, a_staff_role, a_action, a_municipality,
            a_case, a_referral, a_note, a_consent, a_basis, a_outcome, a_body)
            WITH ORDINALITY AS r(at, ag, sn, sr, ac, mu, ca, rf, nt, co, ba, ou, bo, i)
            ORDER BY r.i;
    END IF;
    RETURN COALESCE(cardinality(a_body), 0);
END;
$$;

-- Chains at most `max_records` pending records (oldest id first) after the head and moves them
-- into `audit_records`, under the chain's lock: record n's hash is the SHA-256 of hash_prefix,
-- the sequence number as a field (length 8, big-endian), the record's body and the previous
-- hash as a field (length 32), the bytes domain::audit::record_hash hashes. With `wait`, waits
-- for the lock (a reader that must see every committed record); without, returns -1 at once
-- when another transaction holds it (a sequencer: the holder chains what is committed by the
-- time it reads, the rest is chained on the next round). Returns how many records it chained.
CREATE FUNCTION tsunagu_chain_pending(hash_prefix BYTEA, max_records INTEGER, wait BOOLEAN)
RETURNS INTEGER
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    chain_key CONSTANT BIGINT := hashtextextended('tsunagu:audit', 0);
    head_sequence BIGINT;
    head_hash BYTEA;
    p audit_pending%ROWTYPE;
    moved BIGINT[] := '{}';
BEGIN
    -- Nothing pending (the usual case for a reader): no lock, no wait.
    IF NOT EXISTS (SELECT 1 FROM audit_pending) THEN
        RETURN 0;
    END IF;
    IF wait THEN
        PERFORM pg_advisory_xact_lock(chain_key);
    ELSIF NOT pg_try_advisory_xact_lock(chain_key) THEN
        RETURN -1;
    END IF;
    -- Statements of their own, so they see every record committed before the lock was had.
    SELECT a.sequence, a.hash INTO head_sequence, head_hash FROM audit_records a
        ORDER BY a.sequence DESC LIMIT 1;
    IF head_sequence IS NULL THEN
        head_sequence := 0;
        head_hash := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    FOR p IN SELECT * FROM audit_pending ORDER BY id LIMIT max_records LOOP
        head_sequence := head_sequence + 1;
        head_hash := sha256(hash_prefix
            || '\x0000000000000008'::bytea || int8send(head_sequence)
            || p.body
            || '\x0000000000000020'::bytea || head_hash);
        INSERT INTO audit_records (sequence, recorded_at, agency_id, staff_name, staff_role,
            action, municipality, case_id, referral_id, note_id, consent_id, basis, outcome,
            hash)
        VALUES (head_sequence, p.recorded_at, p.agency_id, p.staff_name, p.staff_role,
            p.action, p.municipality, p.case_id, p.referral_id, p.note_id, p.consent_id,
            p.basis, p.outcome, head_hash);
        moved := moved || p.id;
    END LOOP;
    -- Exactly the rows chained: a row with a lower id may have committed after they were read.
    DELETE FROM audit_pending WHERE id = ANY (moved);
    RETURN cardinality(moved);
END;
$$;
