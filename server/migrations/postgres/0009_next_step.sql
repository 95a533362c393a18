-- The next step after a confirmed "did not connect": closing the family's need with a coded
-- reason and a short clear-text note (at most 200 characters, never a name). And, for every
-- reason given in the clear on a referral event, an optional sealed detail (an age file the hub
-- never reads) for the law's review.
ALTER TABLE referrals ADD COLUMN close_reason TEXT;
ALTER TABLE referrals ADD COLUMN close_reason_text TEXT;
ALTER TABLE referrals ADD COLUMN closed_with_reason_at BIGINT;
ALTER TABLE referrals ADD COLUMN closed_with_reason_by TEXT;
ALTER TABLE referral_events ADD COLUMN reason_text TEXT;
ALTER TABLE referral_events ADD COLUMN reason_detail BYTEA;
