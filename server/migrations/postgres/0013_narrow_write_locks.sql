-- Writes that do not all queue behind one lock (issue 18). A write transaction appends its feed
-- entries and audit records last, in one go, and this function is where it starts to: it takes
-- the advisory lock of every agency whose feed grows (sorted, so two writers never wait for each
-- other in a circle), sends the NOTIFY that other hub instances wake their subscribers with
-- (delivered only if the transaction commits), takes the audit chain's lock when the
-- transaction has audit records, and returns the chain's head as it stands once that lock is
-- held. The locks last until the transaction ends, so feed cursors become visible in the order
-- they were drawn for each agency and the chain has one writer at its tail.
CREATE FUNCTION tsunagu_lock_tail(feed_agencies TEXT[], channel TEXT, payload TEXT, chained BOOLEAN)
RETURNS TABLE (head_sequence BIGINT, head_hash BYTEA)
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
    IF payload IS NOT NULL THEN
        PERFORM pg_notify(channel, payload);
    END IF;
    IF chained THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('tsunagu:audit', 0));
        -- A statement of its own, so it sees every record committed before the lock was had.
        RETURN QUERY SELECT a.sequence, a.hash FROM audit_records a
            ORDER BY a.sequence DESC LIMIT 1;
    END IF;
END;
$$;
